//! OCI images (ch3): an image layout directory, an oci-archive (a tar of
//! one, what buildah and skopeo write by default), and Docker ≥ 25's
//! `docker save`, which is both an OCI layout and a docker-save archive.
//!
//! An image layout is content-addressed. `oci-layout` says it is one;
//! `index.json` lists manifests by *descriptor* (media type, digest, size);
//! a manifest lists the image's config and its layers, bottom first, the
//! same way; and each is a file `blobs/sha256/<hex digest>`:
//!
//! ```text
//! oci-layout   index.json ──▶ manifest ──▶ config  (Env, Cmd, WorkingDir, User…)
//!                                    └──▶ layer 1, layer 2, …  (tar, tar+gzip, tar+zstd)
//! ```
//!
//! Nothing in it is trusted: every blob is checked against its descriptor,
//! its size and its sha256, before it is used. A layer is hashed while it is
//! unpacked into a scratch directory, which becomes `layers/<digest>/` only
//! if both match; a layer already there (unpacked and checked before) is not
//! read again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, DigestAlgorithm, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};

use super::unpack;
use crate::detail;
use crate::error::{printable, Error, Result};

/// The largest JSON blob read (an index, a manifest, a config): a few kB in
/// practice.
const JSON_LIMIT: u64 = 4 << 20;

/// Where an image layout's files are: a directory, or members of an
/// uncompressed tar (their offsets and sizes, found in one pass).
#[derive(Debug)]
pub enum Blobs {
    Dir(PathBuf),
    Archive {
        path: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

/// An OCI image, its manifest chosen and read.
#[derive(Debug)]
pub struct Image {
    pub blobs: Blobs,
    pub manifest: ImageManifest,
    /// The manifest's own descriptor.
    pub digest: Descriptor,
    /// What the image is called here, for messages.
    pub what: String,
}

impl Blobs {
    /// The image layout in directory `dir`, if it is one (`oci-layout` in it).
    pub fn in_dir(dir: &Path) -> Option<Blobs> {
        dir.join("oci-layout")
            .is_file()
            .then(|| Blobs::Dir(dir.to_path_buf()))
    }

    /// The members of the uncompressed tarball `path`, if it holds an image
    /// layout (`oci-layout` and `index.json`).
    pub fn in_archive(path: &Path, members: HashMap<String, (u64, u64)>) -> Option<Blobs> {
        (members.contains_key("oci-layout") && members.contains_key("index.json")).then(|| {
            Blobs::Archive {
                path: path.to_path_buf(),
                members,
            }
        })
    }

    /// The file `name` of the layout (`index.json`, `blobs/sha256/…`), at
    /// most `limit` bytes of it.
    fn open(&self, name: &str, limit: u64) -> Result<Box<dyn Read + Send>> {
        match self {
            Blobs::Dir(dir) => {
                let (file, size) = open_beneath(dir, name)?;
                Ok(Box::new(file.take(size.min(limit))))
            }
            Blobs::Archive { path, members } => {
                let &(offset, size) = members.get(name).ok_or_else(|| {
                    Error::Invalid(format!(
                        "image {}: the archive has no {name}: it is not a whole image layout",
                        path.display()
                    ))
                })?;
                let (mut file, _) = super::open_regular(path)?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| Error::io("reading image", path, e))?;
                Ok(Box::new(file.take(size.min(limit))))
            }
        }
    }

    /// The blob `descriptor` names, checked against its size and sha256 as
    /// it is read: the reader fails at its end if either differs.
    pub fn blob(
        &self,
        descriptor: &Descriptor,
        what: &str,
    ) -> Result<Checked<Box<dyn Read + Send>>> {
        let hex = sha256_of(descriptor, what)?;
        let size = descriptor.size();
        // One byte more than promised is enough to tell a longer blob.
        let inner = self.open(&format!("blobs/sha256/{hex}"), size.saturating_add(1))?;
        Ok(Checked {
            inner,
            hasher: Sha256::new(),
            read: 0,
            size,
            hex: hex.to_string(),
            what: what.to_string(),
        })
    }

    /// A small JSON blob (a manifest, an index, a config), checked, parsed.
    pub(super) fn json<T: serde::de::DeserializeOwned>(
        &self,
        descriptor: &Descriptor,
        what: &str,
    ) -> Result<T> {
        if descriptor.size() > JSON_LIMIT {
            return Err(Error::Invalid(format!(
                "{what} is {} bytes, more than a {} can be: the image is damaged",
                descriptor.size(),
                "manifest or config"
            )));
        }
        let mut bytes = Vec::new();
        self.blob(descriptor, what)?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Invalid(printable(&e.to_string())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("{what} is not valid JSON of its kind ({e})")))
    }
}

/// The regular file `name` inside the layout directory `dir`, opened
/// through no symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a
/// layout's blobs are its own files, never links to the host's. A FIFO or
/// a device is refused at once (O_NONBLOCK, then fstat).
fn open_beneath(dir: &Path, name: &str) -> Result<(File, u64)> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let shown = format!("{}/{name}", dir.display());
    let refuse = |why: String| {
        Error::Invalid(format!(
            "image {}: {name} {why}: an image layout's files must be regular files in it",
            dir.display()
        ))
    };
    let top = File::open(dir).map_err(|e| Error::io("opening image", dir, e))?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = crate::dataroot::openat2(&top, name, how).map_err(|errno| match errno {
        nix::errno::Errno::ELOOP | nix::errno::Errno::EXDEV => {
            refuse("is a symlink, or lies behind one".into())
        }
        other => Error::Io {
            what: "opening image",
            path: PathBuf::from(&shown),
            source: io::Error::from(other),
        },
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| Error::io("stat", &shown, e))?;
    if !meta.is_file() {
        return Err(refuse("is not a regular file".into()));
    }
    Ok((file, meta.len()))
}

/// The sha256 hex digest a descriptor gives (the only algorithm stepbox
/// uses), or why not.
fn sha256_of<'d>(descriptor: &'d Descriptor, what: &str) -> Result<&'d str> {
    let digest = descriptor.digest();
    if *digest.algorithm() != DigestAlgorithm::Sha256 {
        return Err(Error::Invalid(format!(
            "{what} has a {} digest: stepbox checks sha256 digests only",
            digest.algorithm()
        )));
    }
    Ok(digest.digest())
}

/// A reader that checks, at its end, that it gave exactly `size` bytes
/// whose sha256 is `hex`.
pub struct Checked<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    size: u64,
    hex: String,
    what: String,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if self.read > self.size || (n == 0 && !buf.is_empty()) {
            self.check()?;
        }
        Ok(n)
    }
}

impl<R> Checked<R> {
    fn check(&self) -> io::Result<()> {
        if self.read != self.size {
            let held = match self.read > self.size {
                true => format!("more than the {} bytes", self.size),
                false => format!("{} bytes, not the {}", self.read, self.size),
            };
            return Err(corrupt(format!(
                "{} holds {held} its descriptor says",
                self.what
            )));
        }
        let got = format!("{:x}", self.hasher.clone().finalize());
        if got != self.hex {
            return Err(corrupt(format!(
                "{} has the digest sha256:{got}, not the sha256:{} its descriptor says",
                self.what, self.hex
            )));
        }
        Ok(())
    }
}

fn corrupt(text: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{text}: the image is damaged or was altered"),
    )
}

/// Whether `error` (as the unpacker reports it) came from a [`Checked`]
/// reader: then it is the whole story.
pub fn checked_failure(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::InvalidData
        && error
            .to_string()
            .ends_with("the image is damaged or was altered")
}

/// The image index of the layout in `blobs`.
pub fn index(blobs: &Blobs, what: &str) -> Result<ImageIndex> {
    let mut text = Vec::new();
    blobs
        .open("index.json", JSON_LIMIT)?
        .read_to_end(&mut text)
        .map_err(|e| Error::io("reading image", what, e))?;
    serde_json::from_slice(&text).map_err(|e| {
        Error::Invalid(format!(
            "image {what}: index.json is not an OCI image index ({e})"
        ))
    })
}

/// Open the image in `blobs`: its index, the one manifest in it (for this
/// machine's platform, if the index has several), or the one named `tag`;
/// then that manifest.
pub fn open(blobs: Blobs, what: &str, tag: Option<&str>) -> Result<Image> {
    let index = index(&blobs, what)?;
    let descriptor = choose(index.manifests(), what, tag)?;
    open_manifest(blobs, &descriptor, what)
}

/// The image whose manifest (or index of manifests, one per platform)
/// `descriptor` names in `blobs`.
pub fn open_manifest(blobs: Blobs, descriptor: &Descriptor, what: &str) -> Result<Image> {
    let mut descriptor = descriptor.clone();
    // An index may point at another index (one manifest per platform).
    for _ in 0..4 {
        if *descriptor.media_type() != MediaType::ImageIndex {
            break;
        }
        let nested: ImageIndex = blobs.json(&descriptor, &format!("image {what}'s index"))?;
        descriptor = choose(nested.manifests(), what, None)?;
    }
    let kind = descriptor.media_type().to_string();
    if !matches!(descriptor.media_type(), MediaType::ImageManifest)
        && kind != "application/vnd.docker.distribution.manifest.v2+json"
    {
        return Err(Error::Invalid(format!(
            "image {what}: its index names a {}, not an image manifest",
            printable(&kind)
        )));
    }
    let manifest: ImageManifest = blobs.json(&descriptor, &format!("image {what}'s manifest"))?;
    detail!(
        3,
        "image {what}: OCI manifest {}, {} layers",
        descriptor.digest(),
        manifest.layers().len()
    );
    Ok(Image {
        blobs,
        manifest,
        digest: descriptor,
        what: what.to_string(),
    })
}

/// The names an index gives the image `descriptor` names: Docker's and
/// containerd's full name, and the OCI `ref.name` (often a tag alone).
pub fn names(descriptor: &Descriptor) -> Vec<String> {
    let Some(annotations) = descriptor.annotations() else {
        return Vec::new();
    };
    ["io.containerd.image.name", super::store::REF_NAME]
        .iter()
        .filter_map(|key| annotations.get(*key).cloned())
        .collect()
}

impl Image {
    /// The bytes of the image's config blob (checked like every blob).
    pub fn config_bytes(&self) -> Result<Vec<u8>> {
        let what = format!("image {}", self.what);
        let descriptor = self.manifest.config();
        if descriptor.size() > JSON_LIMIT {
            return Err(Error::Invalid(format!(
                "{what}'s config is {} bytes, more than a config can be: the image is damaged",
                descriptor.size()
            )));
        }
        let mut bytes = Vec::new();
        self.blobs
            .blob(descriptor, &format!("{what}'s config"))?
            .read_to_end(&mut bytes)
            .map_err(|e| Error::Invalid(printable(&e.to_string())))?;
        Ok(bytes)
    }

    /// The image's config, read from its blob (checked like every blob).
    pub fn config(&self) -> Result<super::Config> {
        let what = format!("image {}", self.what);
        let bytes = self.config_bytes()?;
        super::Config::from_blob(&bytes, &what)
    }
}

/// The manifest to run among `manifests`: the one named `tag`, else the
/// only one, or the one for linux and this architecture; several images
/// are an error that lists their names.
fn choose(manifests: &[Descriptor], what: &str, tag: Option<&str>) -> Result<Descriptor> {
    let shown = |d: &Descriptor| match names(d).first() {
        Some(name) => printable(name),
        None => d.digest().to_string(),
    };
    let all: Vec<String> = manifests.iter().map(shown).collect();
    if let Some(tag) = tag {
        let named = manifests.iter().map(|d| (d.clone(), names(d))).collect();
        return super::pick(named, what, tag);
    }
    if let [only] = manifests {
        return Ok(only.clone());
    }
    if manifests.is_empty() {
        return Err(Error::Invalid(format!(
            "image {what}: its index lists no manifest: the layout holds no image"
        )));
    }
    let here = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let for_here: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == here
            })
        })
        .collect();
    if let [only] = for_here.as_slice() {
        return Ok((*only).clone());
    }
    Err(super::several_images(what, &all))
}

/// How a layer's bytes are compressed, from its media type; anything else
/// is refused, naming it.
pub fn check_layer_type(descriptor: &Descriptor, what: &str) -> Result<()> {
    match descriptor.media_type() {
        MediaType::ImageLayer
        | MediaType::ImageLayerGzip
        | MediaType::ImageLayerZstd
        | MediaType::ImageLayerNonDistributable
        | MediaType::ImageLayerNonDistributableGzip
        | MediaType::ImageLayerNonDistributableZstd => Ok(()),
        MediaType::Other(kind) if kind == "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            Ok(())
        }
        other => Err(Error::Invalid(format!(
            "{what} has the media type {}: stepbox unpacks tar, tar+gzip and tar+zstd layers",
            printable(other.as_ref())
        ))),
    }
}

/// A file read at an offset it keeps itself (pread(2)): a seek is no
/// system call, so walking an archive's headers costs one read a member.
struct Positioned {
    file: File,
    at: u64,
}

impl Read for Positioned {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(&self.file, buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl Seek for Positioned {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, offset) = match to {
            SeekFrom::Start(at) => (at, 0),
            SeekFrom::Current(offset) => (self.at, offset),
            SeekFrom::End(offset) => (self.file.metadata()?.len(), offset),
        };
        self.at = base.checked_add_signed(offset).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek before the file's start",
            )
        })?;
        Ok(self.at)
    }
}

/// The members of the uncompressed tar `file` by name, with the offset and
/// size of each one's data, read from the headers alone (no data is read);
/// None at the first member only a root filesystem holds
/// ([`super::layers::only_in_a_root`]).
pub fn members(file: File) -> Result<Option<HashMap<String, (u64, u64)>>> {
    let bad = unpack::not_a_tar;
    let mut archive = tar::Archive::new(Positioned { file, at: 0 });
    let mut members = HashMap::new();
    for entry in archive.entries_with_seek().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        if unpack::is_meta(entry.header().entry_type()) {
            continue;
        }
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        if super::layers::only_in_a_root(&name) {
            return Ok(None);
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = name.trim_start_matches("./").to_string();
        members.insert(name, (entry.raw_file_position(), entry.size()));
    }
    Ok(Some(members))
}
