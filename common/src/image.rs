//! The image store: finding an image, provisioning the default one, and
//! unpacking it safely (ch2 onwards).
//!
//! An image is a root filesystem packed as a tarball (`docker export` style),
//! kept as `images/<name>.tar[.gz]` in the data root, or given by path. ch2
//! unpacks it once into `rootfs/<name>/` and runs in that directory directly.

mod config;
pub mod export;
mod layers;
pub mod mapped;
pub mod oci;
pub(crate) mod provision;
pub mod unpack;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::dataroot::{check_name, DataRoot};
use crate::error::{Error, Result};
use crate::{detail, narrate};

pub use config::Config;
pub use layers::{layer_count, layers, Layers};

/// The image every chapter runs when none is named.
pub const DEFAULT_IMAGE: &str = "busybox";

/// Where an image's files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A tarball, plain or gzip-compressed.
    Tarball(PathBuf),
    /// A directory that already is a root filesystem.
    Directory(PathBuf),
}

/// An image, found by name in the data root or given by path.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub source: Source,
}

/// Find the image `spec`: a path (anything with a `/`, or ending in `.tar`,
/// `.tar.gz` or `.tgz`), or a name in `images/`. The default image is provisioned on
/// first use.
pub fn find(root: &DataRoot, spec: &str) -> Result<Image> {
    let as_path = Path::new(spec);
    let looks_like_file = [".tar", ".tar.gz", ".tgz"]
        .iter()
        .any(|ext| spec.ends_with(ext));
    if spec.contains('/') || looks_like_file {
        return from_path(as_path);
    }
    check_name("image", spec)?;
    let images = root.dir("images")?;
    for file in [format!("{spec}.tar"), format!("{spec}.tar.gz")] {
        let path = images.join(file);
        if path.is_file() {
            detail!(2, "image {spec}: {}", path.display());
            return Ok(Image {
                name: spec.to_string(),
                source: Source::Tarball(path),
            });
        }
    }
    if spec == DEFAULT_IMAGE {
        let path = images.join(format!("{spec}.tar"));
        provision::busybox(root, &path)?;
        return Ok(Image {
            name: spec.to_string(),
            source: Source::Tarball(path),
        });
    }
    Err(Error::Invalid(format!(
        "no image {spec:?} in {}: give the path of a rootfs tarball or directory instead, or use {DEFAULT_IMAGE}",
        images.display()
    )))
}

fn from_path(path: &Path) -> Result<Image> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Invalid(format!(
            "image {}: {e}: give an existing rootfs tarball or directory",
            path.display()
        ))
    })?;
    let path = std::path::absolute(path).map_err(|e| Error::io("resolving", path, e))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = [".tar.gz", ".tgz", ".tar"]
        .iter()
        .find_map(|ext| file_name.strip_suffix(ext))
        .unwrap_or(&file_name)
        .to_string();
    check_name("image", &name)
        .map_err(|_| Error::Invalid(format!("image file name {file_name:?} does not give a usable image name: rename it to e.g. alpine.tar")))?;
    let source = if meta.is_dir() {
        Source::Directory(path)
    } else if meta.is_file() {
        Source::Tarball(path)
    } else {
        return Err(not_regular(&path, &meta));
    };
    Ok(Image { name, source })
}

/// Open a tarball for reading, decompressing it if it is gzip. No more than
/// the file's size when opened is read.
pub fn open_tarball(path: &Path) -> Result<Box<dyn Read>> {
    let (file, size) = open_regular(path)?;
    decompress(BufReader::with_capacity(1 << 16, file.take(size)))
}

/// Open the image file `path` and say how long it is: a regular file only.
/// A FIFO would block the open (or the first read) forever and a device
/// such as /dev/zero never ends, so both are refused at once (the open
/// itself is O_NONBLOCK, which changes nothing for a regular file).
pub(crate) fn open_regular(path: &Path) -> Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io("opening image", path, e))?;
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    Ok((file, meta.len()))
}

fn not_regular(path: &Path, meta: &std::fs::Metadata) -> Error {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    let what = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Error::Invalid(format!(
        "image {} is not a regular file ({what}): give a rootfs tarball or directory",
        path.display()
    ))
}

/// How a tar stream is compressed, told by its first bytes (its magic
/// number), whatever the file is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

impl Compression {
    /// The compression whose magic number `start` begins with.
    pub fn of(start: &[u8]) -> Compression {
        match start {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
            [b'B', b'Z', b'h', ..] => Compression::Bzip2,
            _ => Compression::None,
        }
    }
}

/// The tar stream in `reader`: gunzipped or zstd-decompressed if it starts
/// with their magic bytes; xz and bzip2 are refused, naming them.
pub fn decompress<'a>(mut reader: impl BufRead + 'a) -> Result<Box<dyn Read + 'a>> {
    // The magic numbers are up to 6 bytes long; a reader may give them in pieces.
    let mut start = Vec::with_capacity(6);
    while start.len() < 6 {
        let buf = reader.fill_buf().map_err(unpack::not_a_tar)?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len().min(6 - start.len());
        start.extend_from_slice(&buf[..n]);
        reader.consume(n);
    }
    let compression = Compression::of(&start);
    let stream = io::Cursor::new(start).chain(reader);
    match compression {
        Compression::None => Ok(Box::new(stream)),
        Compression::Gzip => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::new(stream),
        ))),
        Compression::Zstd => Ok(Box::new(
            zstd::stream::read::Decoder::new(stream).map_err(unpack::not_a_tar)?,
        )),
        Compression::Xz | Compression::Bzip2 => {
            let (name, tool) = match compression {
                Compression::Xz => ("xz", "unxz"),
                _ => ("bzip2", "bunzip2"),
            };
            Err(Error::Invalid(format!(
                "the image is {name}-compressed, which stepbox does not read: \
                 decompress it first ({tool} FILE), or give a plain, gzip or zstd tarball"
            )))
        }
    }
}

/// ch2: the image unpacked once into `rootfs/<name>/`, used directly by every
/// run, so writes persist and are shared (the problem ch3 solves). A
/// directory image is used where it is.
pub fn unpack_rootfs(root: &DataRoot, image: &Image) -> Result<PathBuf> {
    let tarball = match &image.source {
        Source::Directory(dir) => {
            if oci::Blobs::in_dir(dir).is_some() {
                return Err(Error::Invalid(format!(
                    "image directory {} is an OCI image layout (layers and a manifest), not a \
                     root filesystem: chapter 3 on run such images; here, give a root \
                     filesystem directory or a flat tarball",
                    dir.display()
                )));
            }
            if !crate::rootfs::looks_like_a_root(dir) {
                return Err(Error::Invalid(format!(
                    "image directory {}: {}",
                    dir.display(),
                    crate::rootfs::NOT_A_ROOT
                )));
            }
            for needed in ["proc", "dev", "tmp"] {
                if !dir.join(needed).is_dir() {
                    return Err(Error::Invalid(format!(
                        "image directory {} has no /{needed} to mount on: create it (mkdir {})",
                        dir.display(),
                        dir.join(needed).display()
                    )));
                }
            }
            return Ok(dir.clone());
        }
        Source::Tarball(path) => path,
    };
    let dest = root.dir("rootfs")?.join(&image.name);
    // Which file the root was unpacked from, kept beside the layer index.
    let source = root
        .dir("index")?
        .join(format!("rootfs-{}.json", image.name));
    if dest.is_dir() && !layers::is_recorded_source(&source, tarball) {
        return Err(Error::Conflict(format!(
            "{} was unpacked from another file than {}, and may hold your changes: \
             remove it (rm -rf {}) to unpack this one, or rename the tarball",
            dest.display(),
            tarball.display(),
            dest.display()
        )));
    }
    if dest.is_dir() {
        detail!(
            2,
            "image {} already unpacked in {}",
            image.name,
            dest.display()
        );
        return Ok(dest);
    }
    if layers::is_saved(tarball)? {
        return Err(Error::Invalid(format!(
            "image {} is a saved image (layers and a manifest: docker save, or an OCI \
             archive), not a root filesystem: chapter 3 on run such images; here, give a \
             flat rootfs tarball (docker export)",
            tarball.display()
        )));
    }
    let scratch = root.scratch("unpack")?;
    let unpacked = unpack::unpack(open_tarball(tarball)?, scratch.path())?;
    if unpacked.entries == 0 {
        return Err(layers::empty_image(&tarball.display().to_string()));
    }
    for needed in ["proc", "dev", "sys", "tmp"] {
        let dir = scratch.path().join(needed);
        if !dir.exists() {
            std::fs::create_dir(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        }
    }
    if scratch.persist(&dest)? {
        unpacked.apply_root_mode(&dest)?;
        layers::remember_source(&source, tarball)?;
        narrate!(
            2,
            "unpacked {} ({} entries) into {}",
            tarball.display(),
            unpacked.entries,
            dest.display()
        );
    }
    Ok(dest)
}
