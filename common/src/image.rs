//! Images: finding one, provisioning the default one, and unpacking it
//! safely (ch2 onwards).
//!
//! An image is named or given by path. A name is looked up in the image
//! store (`load` and `commit` put images there, ch5: see [`store`]), then
//! as a file `images/<name>.tar[.gz]` in the data root, where a learner
//! may drop a root filesystem tarball in chapters 2 to 4. A path is a root
//! filesystem tarball or directory, a `docker save` archive, an OCI image
//! layout or an oci-archive; `PATH:TAG` picks one image of an archive that
//! holds several. ch2 unpacks a root filesystem once into `rootfs/<name>/`
//! and runs in that directory directly.

mod config;
pub mod export;
mod layers;
pub mod mapped;
pub mod oci;
pub(crate) mod provision;
pub mod reference;
pub mod store;
pub mod transfer;
pub mod unpack;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::dataroot::{check_name, DataRoot};
use crate::error::{printable, Error, Result};
use crate::{detail, narrate};

pub use config::Config;
pub use layers::{layer_count, layers, Layers};
pub use reference::Reference;

/// The image every chapter runs when none is named.
pub const DEFAULT_IMAGE: &str = "busybox";

/// Where an image's files come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A tarball: a root filesystem (plain, gzip or zstd), a docker save
    /// archive or an oci-archive.
    Tarball(PathBuf),
    /// A directory: a root filesystem, or an OCI image layout.
    Directory(PathBuf),
    /// An image of the store (ch5 `load`, `commit`).
    Stored(Box<store::Entry>),
}

/// An image, found by name in the data root or given by path.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub source: Source,
    /// Which image of an archive of several (`PATH:TAG`).
    pub tag: Option<String>,
}

impl Image {
    /// The manifest digest of a stored image (`sha256:…`), recorded with a
    /// container so that `rmi` knows the image is in use.
    pub fn stored_digest(&self) -> Option<String> {
        match &self.source {
            Source::Stored(entry) => Some(entry.manifest.digest().to_string()),
            _ => None,
        }
    }
}

/// Find the image `spec`. A path is anything that starts with `/` or `.`,
/// ends in `.tar`, `.tar.gz`, `.tgz` or `.tar.zst`, or holds a `/` and
/// exists (`images/app.tar`); else it is a name (`busybox`, `app:v1`,
/// `localhost/app`) or an image ID. The default image is provisioned on
/// first use.
pub fn find(root: &DataRoot, spec: &str) -> Result<Image> {
    let file_like = |text: &str| {
        [".tar", ".tar.gz", ".tgz", ".tar.zst"]
            .iter()
            .any(|ext| text.ends_with(ext))
    };
    let looks_like_file =
        file_like(spec) || split_tag(spec).is_some_and(|(path, _)| file_like(path));
    let exists = || Path::new(spec).exists() || split_tag(spec).is_some();
    if spec.starts_with(['/', '.']) || looks_like_file || (spec.contains('/') && exists()) {
        return from_path(spec);
    }
    let store = store::Store::open(root)?;
    if let Some(entry) = store.find(spec)? {
        detail!(2, "image {spec}: manifest {}", entry.manifest.digest());
        return Ok(Image {
            name: store::shown(&entry),
            source: Source::Stored(Box::new(entry)),
            tag: None,
        });
    }
    if check_name("image", spec).is_ok() {
        let images = root.dir("images")?;
        for file in [format!("{spec}.tar"), format!("{spec}.tar.gz")] {
            let path = images.join(file);
            if path.is_file() {
                detail!(2, "image {spec}: {}", path.display());
                return Ok(Image {
                    name: spec.to_string(),
                    source: Source::Tarball(path),
                    tag: None,
                });
            }
        }
        if spec == DEFAULT_IMAGE {
            let path = images.join(format!("{spec}.tar"));
            provision::busybox(root, &path)?;
            return Ok(Image {
                name: spec.to_string(),
                source: Source::Tarball(path),
                tag: None,
            });
        }
    }
    if let Err(error) = Reference::parse(spec) {
        if check_name("image", spec).is_err() {
            return Err(error);
        }
    }
    Err(Error::Invalid(format!(
        "no image {} in the store or in {}: load it (ch5-commit load -i FILE), give the path \
         of an image file or directory (./{spec}), or use {DEFAULT_IMAGE}",
        printable(&format!("{spec:?}")),
        root.path().join("images").display()
    )))
}

/// `PATH:TAG` where PATH exists and `PATH:TAG` does not: the two parts.
/// The tag may hold a ':' itself (`multi.tar:app:v1`, a whole name).
fn split_tag(spec: &str) -> Option<(&str, &str)> {
    if Path::new(spec).exists() {
        return None;
    }
    spec.match_indices(':').find_map(|(at, _)| {
        let (path, tag) = (&spec[..at], &spec[at + 1..]);
        (!tag.is_empty() && !tag.contains('/') && Path::new(path).exists()).then_some((path, tag))
    })
}

/// Among `names` (each image's, in order), the one image `tag` picks: an
/// error if none does, or several do.
pub(crate) fn pick<T>(images: Vec<(T, Vec<String>)>, what: &str, tag: &str) -> Result<T> {
    let shown: Vec<String> = images
        .iter()
        .map(|(_, names)| match names.first() {
            Some(name) => printable(name),
            None => "(untagged)".to_string(),
        })
        .collect();
    let mut matching: Vec<(T, String)> = images
        .into_iter()
        .zip(shown.iter().cloned())
        .filter(|((_, names), _)| names.iter().any(|name| tag_matches(name, tag)))
        .map(|((image, _), shown)| (image, shown))
        .collect();
    match matching.len() {
        0 => Err(no_such_tag(what, tag, &shown)),
        1 => Ok(matching.remove(0).0),
        _ => Err(Error::Invalid(format!(
            "image {what}: the tag {} names {} of its images ({}): give the whole name, as {what}:NAME:TAG",
            printable(tag),
            matching.len(),
            matching.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Whether the name `name` an archive gives an image (`app:v1`,
/// `docker.io/library/app:v1`, or a tag alone) is what `wanted` asks for:
/// the whole name, its tag, or its name when the tag is `latest`.
pub(crate) fn tag_matches(name: &str, wanted: &str) -> bool {
    name == wanted
        || name.rsplit_once(':').is_some_and(|(repository, tag)| {
            tag == wanted || (tag == reference::DEFAULT_TAG && repository == wanted)
        })
}

/// An archive of several images, run without saying which.
pub(crate) fn several_images(what: &str, names: &[String]) -> Error {
    Error::Invalid(format!(
        "image {what} holds {} images ({}): say which, as {what}:TAG, \
         or load them all (ch5-commit load -i {what}) and run one by name",
        names.len(),
        names.join(", ")
    ))
}

/// An archive asked for a tag it does not hold.
pub(crate) fn no_such_tag(what: &str, tag: &str, names: &[String]) -> Error {
    Error::Invalid(format!(
        "image {what} holds no image tagged {}: it holds {}",
        printable(tag),
        names.join(", ")
    ))
}

fn from_path(spec: &str) -> Result<Image> {
    let (path, tag) = match split_tag(spec) {
        Some((path, tag)) => (Path::new(path), Some(tag.to_string())),
        None => (Path::new(spec), None),
    };
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
    let name = [".tar.gz", ".tgz", ".tar.zst", ".tar"]
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
    Ok(Image { name, source, tag })
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
        Compression::Gzip => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(stream))),
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
    let blob;
    let tarball = match &image.source {
        Source::Stored(entry) => {
            blob = one_layer(root, image, entry)?;
            &blob
        }
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
    // A stored image's name may hold '/' and ':' (localhost/app:v1).
    let dir_name = image.name.replace(['/', ':'], "_");
    let dest = root.dir("rootfs")?.join(&dir_name);
    // Which file the root was unpacked from, kept beside the layer index.
    let source = root.dir("index")?.join(format!("rootfs-{dir_name}.json"));
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
    if image.tag.is_some() || layers::is_saved(tarball)? {
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

/// The blob of a stored image's only layer: what ch2 unpacks. An image of
/// several layers needs overlayfs (chapter 3).
fn one_layer(root: &DataRoot, image: &Image, entry: &store::Entry) -> Result<PathBuf> {
    let store = store::Store::open(root)?;
    let stored = store.read(entry)?;
    match stored.manifest.layers().as_slice() {
        [only] => Ok(store.blob_path(only.digest().digest())),
        layers => Err(Error::Invalid(format!(
            "image {} has {} layers: chapter 3 on stack layers; here, give an image of one \
             layer or a root filesystem",
            image.name,
            layers.len()
        ))),
    }
}
