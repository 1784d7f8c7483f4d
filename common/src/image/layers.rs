//! Read-only layers: each image tarball unpacked once into `layers/<digest>/` (ch3).
//!
//! The digest is the sha256 of the layer's bytes as stored, computed while
//! we unpack them, never taken from the image's own claims: a hostile image
//! cannot name its layer after someone else's and have it reused. Layers
//! are built in a scratch directory and renamed into place only when whole,
//! so two first runs at once are safe and an interrupted unpack registers
//! nothing. A small index (`index/`) remembers which layers an image file
//! gave, so later runs do not read the tarball again.
//!
//! A `docker save` tarball holds `manifest.json` and one tarball per layer,
//! bottom layer first; each becomes its own layer directory, shared between
//! images that share it. Any other tarball is one layer: a flat root filesystem.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::store::ParallelHashing;
use super::{decompress, oci, unpack, Config, Image, Source};
use crate::dataroot::DataRoot;
use crate::error::{printable, Error, Result};
use crate::{detail, narrate};

/// An image ready to run: its layer directories, bottom first, and its config.
#[derive(Debug)]
pub struct Layers {
    pub dirs: Vec<PathBuf>,
    pub config: Config,
    /// Each layer directory, open with a shared flock(2) on it: while the
    /// run (or its monitor, which inherits them) holds these, `rmi` leaves
    /// the layers be. Keep them as long as the container runs.
    pub held: Vec<fs::File>,
}

/// Hold a shared lock on each of `dirs` (see [`Layers::held`]). The lock
/// belongs to the open file, so a forked monitor keeps it after `run`
/// exits, and only the last close lets it go (never an unlock on drop).
fn hold(dirs: &[PathBuf]) -> Result<Vec<fs::File>> {
    use std::os::fd::AsRawFd;
    dirs.iter()
        .map(|dir| {
            let file = fs::File::open(dir).map_err(|e| Error::io("opening", dir, e))?;
            // SAFETY: flock on an fd we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH) } != 0 {
                let errno = nix::errno::Errno::last();
                return Err(Error::sys(format!("flock({dir:?}, LOCK_SH)"), errno));
            }
            // Out of the way of the fds the chapters' steps open (and
            // narrate, as /proc/self/fd/N): a copy from 100 up, the same
            // open file, so the same lock.
            let high = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100))
                .map_err(|errno| Error::sys(format!("fcntl({dir:?}, F_DUPFD_CLOEXEC)"), errno))?;
            // Never inherited by a container (process::keep_from_containers).
            crate::process::keep_from_containers(high);
            // SAFETY: a new fd, ours alone.
            Ok(unsafe { <fs::File as std::os::fd::FromRawFd>::from_raw_fd(high) })
        })
        .collect()
}

/// Whether a run holds the layer directory `dir` (see [`hold`]).
pub(super) fn in_use(dir: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = fs::File::open(dir) else {
        return false;
    };
    // SAFETY: flock on an fd we own; the lock goes with the file.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) != 0 }
}

/// The image's layers, unpacking what is not cached, and its config.
pub fn layers(root: &DataRoot, image: &Image) -> Result<Layers> {
    let tag = image.tag.as_deref();
    let tarball = match &image.source {
        Source::Stored(entry) => {
            // An image of the store: its blobs were checked when stored,
            // and are checked again as they are read. The store's lock,
            // shared, until the layers are held: `rmi` waits meanwhile.
            let store = super::store::Store::open(root)?;
            let _lock = store.lock_shared()?;
            let oci = oci::open_manifest(store.blobs(), &entry.manifest, &image.name)?;
            let digests = import_oci(root, &oci)?;
            let dirs = layer_dirs(root, &digests)?;
            return Ok(Layers {
                held: hold(&dirs)?,
                dirs,
                config: oci.config()?,
            });
        }
        Source::Directory(dir) => match oci::Blobs::in_dir(dir) {
            // An OCI image layout: its layers are unpacked as an archive's are.
            Some(blobs) => {
                let oci = oci::open(blobs, &dir.display().to_string(), tag)?;
                let digests = import_oci(root, &oci)?;
                let dirs = layer_dirs(root, &digests)?;
                return Ok(Layers {
                    held: hold(&dirs)?,
                    dirs,
                    config: oci.config()?,
                });
            }
            None => {
                no_tag_in_a_root(&dir.display().to_string(), tag)?;
                return Ok(Layers {
                    dirs: vec![dir.clone()],
                    config: Config::default(),
                    held: Vec::new(),
                });
            }
        },
        Source::Tarball(path) => path,
    };
    let layers_dir = super::mapped::layers_dir(root)?;
    let (digests, config) = match cached(root, tarball, tag) {
        Some((digests, config)) if digests.iter().all(|d| layers_dir.join(d).is_dir()) => {
            detail!(3, "image {}: layers cached", image.name);
            (digests, config)
        }
        _ => {
            let what = tarball.display().to_string();
            let (digests, config) = match contents(tarball)? {
                Contents::Oci(blobs) => {
                    let oci = oci::open(blobs, &what, tag)?;
                    (import_oci(root, &oci)?, oci.config()?)
                }
                Contents::Saved(images) => {
                    import_saved(root, tarball, &choose_saved(images, &what, tag)?)?
                }
                Contents::Flat => {
                    no_tag_in_a_root(&what, tag)?;
                    let (file, size) = super::open_regular(tarball)?;
                    let reading = ParallelHashing::reading(file.take(size));
                    let (layer, _) = import_layer(root, reading, &what, Kind::Flat)?;
                    (vec![layer], Config::default())
                }
            };
            remember(root, tarball, tag, &digests, &config)?;
            (digests, config)
        }
    };
    let dirs = layer_dirs(root, &digests)?;
    Ok(Layers {
        held: hold(&dirs)?,
        dirs,
        config,
    })
}

/// A root filesystem is one image, with no tags to choose from.
fn no_tag_in_a_root(what: &str, tag: Option<&str>) -> Result<()> {
    match tag {
        Some(tag) => Err(Error::Invalid(format!(
            "image {what} is a root filesystem, one image with no tags: \
             drop the :{} after its path",
            printable(tag)
        ))),
        None => Ok(()),
    }
}

/// The directories of layers `digests`, bottom first.
fn layer_dirs(root: &DataRoot, digests: &[String]) -> Result<Vec<PathBuf>> {
    let layers_dir = super::mapped::layers_dir(root)?;
    Ok(without_repeats(digests)
        .iter()
        .map(|d| layers_dir.join(d))
        .collect())
}

/// What an image tarball holds.
pub(super) enum Contents {
    /// An OCI image layout (an oci-archive, or Docker ≥ 25's save when it
    /// has no manifest.json).
    Oci(oci::Blobs),
    /// A `docker save` archive: the images its manifest.json lists.
    Saved(Vec<SavedImage>),
    /// One root filesystem.
    Flat,
}

/// Tell an OCI archive, a docker save archive and a flat root filesystem
/// apart. An uncompressed tarball is read header by header (seeking past
/// each member's data); a compressed one is only ever a flat root
/// filesystem or a docker save archive. Docker ≥ 25 writes both an OCI
/// layout and manifest.json: the latter is read, for its tags. A root
/// filesystem is known by its first member that no image archive holds
/// (see [`only_in_a_root`]): the walk stops there, a few members in.
pub(super) fn contents(tarball: &Path) -> Result<Contents> {
    let bad = unpack::not_a_tar;
    let (mut file, _) = super::open_regular(tarball)?;
    let mut magic = [0u8; 6];
    let got = file.read(&mut magic).map_err(bad)?;
    if super::Compression::of(&magic[..got]) != super::Compression::None {
        return Ok(match saved_manifest(tarball)? {
            Some(images) => Contents::Saved(images),
            None => Contents::Flat,
        });
    }
    // (Not buffered: most headers are far apart, and the walk reads only them.)
    let Some(members) = oci::members(file)? else {
        return Ok(Contents::Flat);
    };
    if let Some(&(offset, size)) = members.get("manifest.json") {
        let (mut file, _) = super::open_regular(tarball)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).map_err(bad)?;
        let mut text = String::new();
        file.take(size.min(INDEX_LIMIT))
            .read_to_string(&mut text)
            .map_err(bad)?;
        if let Some(images) = docker_save_images(&text) {
            return Ok(Contents::Saved(images));
        }
    }
    Ok(match oci::Blobs::in_archive(tarball, members) {
        Some(blobs) => Contents::Oci(blobs),
        None => Contents::Flat,
    })
}

/// Whether an archive's member `path` is one that no image archive holds,
/// so that the archive is a root filesystem: `bin/sh` and `etc/passwd` are.
/// A docker save archive holds top-level files (manifest.json, configs,
/// layers) and `NAME/layer.tar`, `NAME/json` and `NAME/VERSION`; an OCI
/// layout top-level files and `blobs/ALGORITHM/DIGEST`.
pub(super) fn only_in_a_root(path: &str) -> bool {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    match parts.as_slice() {
        [] | [_] => false,
        ["blobs", ..] => parts.len() > 3,
        [_, last] => !matches!(*last, "layer.tar" | "json" | "VERSION"),
        _ => true,
    }
}

/// The image of a docker save archive to run: the only one, or the one
/// tagged `tag`; several without a tag are an error listing their tags.
pub(super) fn choose_saved(
    images: Vec<SavedImage>,
    what: &str,
    tag: Option<&str>,
) -> Result<SavedImage> {
    let Some(tag) = tag else {
        if images.len() == 1 {
            return Ok(images.into_iter().next().expect("one image"));
        }
        let names: Vec<String> = images
            .iter()
            .map(|i| match i.tags().first() {
                Some(tag) => printable(tag),
                None => "(untagged)".to_string(),
            })
            .collect();
        return Err(super::several_images(what, &names));
    };
    let named = images
        .into_iter()
        .map(|image| {
            let names = image.tags().to_vec();
            (image, names)
        })
        .collect();
    super::pick(named, what, tag)
}

/// Unpack every layer an OCI image lists (bottom first), skipping those
/// already in layers/ (each was checked against its digest when made).
fn import_oci(root: &DataRoot, image: &oci::Image) -> Result<Vec<String>> {
    let layers_dir = super::mapped::layers_dir(root)?;
    let all = image.manifest.layers();
    if all.is_empty() {
        return Err(Error::Invalid(format!(
            "image {}: its manifest lists no layers: re-save the image",
            image.what
        )));
    }
    // The config names each layer by the digest of its uncompressed bytes
    // (its diff_ids): the image's ID, the config's digest, says what is in
    // it only if every layer is the one its config names.
    let listed = config_diff_ids(&image.config_bytes()?);
    if listed.len() != all.len() {
        return Err(Error::Invalid(format!(
            "image {}: its config lists {} layers (diff_ids), its manifest {}: the image is \
             damaged or was altered",
            image.what,
            listed.len(),
            all.len()
        )));
    }
    let mut digests = Vec::with_capacity(all.len());
    for (n, descriptor) in all.iter().enumerate() {
        let what = format!("layer {} of {} of image {}", n + 1, all.len(), image.what);
        oci::check_layer_type(descriptor, &what)?;
        let hex = descriptor.digest().digest().to_string();
        if is_digest(&hex) && layers_dir.join(&hex).is_dir() {
            detail!(3, "layer {hex} already present");
            if let Some(diff) = recorded_diff(root, &hex) {
                check_diff_ids(&[diff], Some(&listed[n..=n]), &what)?;
            }
            digests.push(hex);
            continue;
        }
        // The checked reader fails at its end unless size and digest are
        // the descriptor's: only then does the scratch directory become a layer.
        let blob = image.blobs.blob(descriptor, &what)?;
        match import_layer(root, ParallelHashing::reading(blob), &what, Kind::Checked) {
            Ok((digest, diff)) => {
                let diff = diff.expect("a checked layer's diff");
                remember_diff(root, &digest, &diff)?;
                check_diff_ids(&[diff], Some(&listed[n..=n]), &what)?;
                digests.push(digest)
            }
            // A damaged blob often breaks the decompressor before its end
            // is reached: then its digest is the error to report.
            Err(error) => {
                let mut again = image.blobs.blob(descriptor, &what)?;
                return match io::copy(&mut again, &mut io::sink()) {
                    Err(e) if oci::checked_failure(&e) => Err(Error::Invalid(e.to_string())),
                    _ => Err(error),
                };
            }
        }
    }
    Ok(digests)
}

/// overlayfs refuses one directory twice in lowerdir (ELOOP). A layer that
/// comes again later re-applies over everything between, so keeping only its
/// last occurrence gives the same view.
fn without_repeats(digests: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for digest in digests.iter().rev() {
        if !kept.contains(digest) {
            kept.push(digest.clone());
        }
    }
    kept.reverse();
    kept
}

/// What [`import_layer`] unpacks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A whole root filesystem: one with no entries at all is refused.
    Flat,
    /// A layer of an image (which may well be empty), to be checked
    /// against its config's `diff_ids`: the digest of its uncompressed
    /// bytes is computed too.
    Checked,
}

/// Unpack one layer from `hashing`'s reader (plain, gzip or zstd tar), returning its
/// digest and, for [`Kind::Checked`], the digest of its uncompressed bytes.
fn import_layer<R: Read>(
    root: &DataRoot,
    mut hashing: ParallelHashing<R>,
    what: &str,
    kind: Kind,
) -> Result<(String, Option<String>)> {
    let scratch = root.scratch("layer")?;
    let mut plain = super::store::Hashing::new(decompress(&mut hashing)?);
    let unpacked = if kind == Kind::Checked {
        super::mapped::unpack(&mut plain, scratch.path())?
    } else {
        super::mapped::unpack(plain.inner_mut(), scratch.path())?
    };
    if kind == Kind::Flat && unpacked.entries == 0 {
        return Err(empty_image(what));
    }
    // The tar reader stops at the end marker: hash whatever follows too.
    let rest = |e| Error::io("reading image", what, e);
    let diff = match kind {
        Kind::Checked => {
            io::copy(&mut plain, &mut io::sink()).map_err(rest)?;
            Some(plain.hex())
        }
        _ => None,
    };
    drop(plain);
    io::copy(&mut hashing, &mut io::sink()).map_err(rest)?;
    let digest = hashing.hex()?;
    let dest = super::mapped::layers_dir(root)?.join(&digest);
    if dest.is_dir() {
        detail!(3, "layer {digest} already present");
    } else if scratch.persist(&dest)? {
        unpacked.apply_root_mode(&dest)?;
        narrate!(
            3,
            "unpacked {} ({} entries) into layer {}",
            // A saved image's member names are the archive's: shown escaped.
            crate::error::printable(what),
            unpacked.entries,
            dest.display()
        );
    }
    Ok((digest, diff))
}

/// The error for an image tarball with no entries.
pub(super) fn empty_image(what: &str) -> Error {
    Error::Invalid(format!(
        "image {what} holds no files (an empty archive): give a root filesystem tarball \
         (e.g. made by docker export) or directory"
    ))
}

/// One image of a docker save manifest.json: its config, tags and layer members.
#[derive(Deserialize, Debug, Clone)]
pub(super) struct SavedImage {
    #[serde(rename = "Config", default)]
    pub config: Option<String>,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

impl SavedImage {
    pub fn tags(&self) -> &[String] {
        self.repo_tags.as_deref().unwrap_or_default()
    }
}

/// The images a compressed `docker save` tarball's manifest.json lists,
/// read as a stream, or None for a flat root filesystem tarball.
fn saved_manifest(tarball: &Path) -> Result<Option<Vec<SavedImage>>> {
    let bad = unpack::not_a_tar;
    let mut archive = tar::Archive::new(super::open_tarball(tarball)?);
    let mut manifest = None;
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        if unpack::is_meta(entry.header().entry_type()) {
            continue;
        }
        let path = entry.path().map_err(bad)?;
        let path = path.to_string_lossy();
        // As for a plain tarball: a member only a root holds makes it one,
        // before or after a manifest.json.
        if only_in_a_root(&path) {
            return Ok(None);
        }
        if path.trim_start_matches("./") != "manifest.json" {
            continue;
        }
        let mut text = String::new();
        entry
            .take(INDEX_LIMIT)
            .read_to_string(&mut text)
            .map_err(bad)?;
        manifest.get_or_insert(text);
    }
    Ok(manifest.as_deref().and_then(docker_save_images))
}

/// The images a docker save manifest.json lists, or None if the text is
/// not one (or lists none): a root filesystem may hold a manifest.json of its own.
fn docker_save_images(text: &str) -> Option<Vec<SavedImage>> {
    let mut images = serde_json::from_str::<Vec<SavedImage>>(text)
        .ok()
        .filter(|images| !images.is_empty())?;
    // Member names as the archive's are read: without a leading ./.
    let plain = |name: &mut String| *name = name.trim_start_matches("./").to_string();
    for image in &mut images {
        image.layers.iter_mut().for_each(plain);
        image.config.iter_mut().for_each(plain);
    }
    Some(images)
}

/// Whether the tarball at `path` is a saved image (layers and a manifest:
/// docker save, or an OCI archive), not a root filesystem.
pub(super) fn is_saved(path: &Path) -> Result<bool> {
    Ok(!matches!(contents(path)?, Contents::Flat))
}

/// How many layers the image tarball at `path` has (1 for a flat rootfs):
/// its first image's.
pub fn layer_count(path: &Path) -> Result<usize> {
    Ok(match contents(path)? {
        Contents::Oci(blobs) => {
            let what = path.display().to_string();
            let index = oci::index(&blobs, &what)?;
            match index.manifests().first() {
                Some(first) => oci::open_manifest(blobs, first, &what)?
                    .manifest
                    .layers()
                    .len(),
                None => 0,
            }
        }
        Contents::Saved(images) => images[0].layers.len(),
        Contents::Flat => 1,
    })
}

/// Each regular member of the docker save archive `tarball` that `wanted`
/// lists, handed to `each` in one pass (path, entry). Members that are
/// links to other members (older `docker save` stores a repeated layer
/// once and links to it) are returned: link path → target path.
pub(super) fn saved_members(
    tarball: &Path,
    wanted: &HashSet<&str>,
    mut each: impl FnMut(&str, tar::Entry<'_, Box<dyn Read>>) -> Result<()>,
) -> Result<HashMap<String, String>> {
    let mut links: HashMap<String, String> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut archive = tar::Archive::new(super::open_tarball(tarball)?);
    let bad = unpack::not_a_tar;
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        // `tar -C dir -cf x.tar .` names every member ./NAME.
        let path = path.trim_start_matches("./").to_string();
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(bad)? {
                let base = if kind.is_symlink() {
                    Path::new(&path).parent()
                } else {
                    None
                };
                let joined = base.unwrap_or(Path::new("")).join(target);
                if let Some(resolved) = normalise(&joined) {
                    links.insert(path, resolved);
                }
            }
            continue;
        }
        if !kind.is_file() || !wanted.contains(path.as_str()) || !seen.insert(path.clone()) {
            continue;
        }
        each(&path, entry)?;
    }
    Ok(links)
}

/// The member `member` names once links are followed (at most 8).
pub(super) fn resolve_link(links: &HashMap<String, String>, member: &str) -> String {
    let mut path = member.to_string();
    for _ in 0..8 {
        match links.get(&path) {
            Some(next) => path = next.clone(),
            None => break,
        }
    }
    path
}

/// Unpack every layer a saved image lists, in one pass over the tarball,
/// reading its config on the way.
fn import_saved(
    root: &DataRoot,
    tarball: &Path,
    saved: &SavedImage,
) -> Result<(Vec<String>, Config)> {
    let members = &saved.layers;
    let what = format!("image {}", tarball.display());
    let mut config = Config::default();
    let invalid = |why: String| Error::Invalid(format!("image {}: {why}", tarball.display()));
    if members.is_empty() {
        return Err(invalid(
            "manifest.json lists no layers: re-save the image".into(),
        ));
    }
    let mut wanted: HashSet<&str> = members.iter().map(String::as_str).collect();
    wanted.extend(saved.config.as_deref());
    // Layer path → digest, and the digest of its uncompressed bytes.
    let mut digests: HashMap<String, (String, Option<String>)> = HashMap::new();
    let mut diff_ids = None;
    let links = saved_members(tarball, &wanted, |path, entry| {
        if saved.config.as_deref() == Some(path) {
            let mut bytes = Vec::new();
            entry
                .take(CONFIG_LIMIT)
                .read_to_end(&mut bytes)
                .map_err(unpack::not_a_tar)?;
            config = Config::from_blob(&bytes, &what)?;
            diff_ids = Some(config_diff_ids(&bytes));
        } else {
            let what = format!("{}:{path}", tarball.display());
            let (digest, diff) =
                import_layer(root, ParallelHashing::new(entry), &what, Kind::Checked)?;
            if let Some(diff) = &diff {
                remember_diff(root, &digest, diff)?;
            }
            digests.insert(path.to_string(), (digest, diff));
        }
        Ok(())
    })?;
    let layers = members
        .iter()
        .map(|member| {
            digests
                .get(&resolve_link(&links, member))
                .cloned()
                .ok_or_else(|| {
                    invalid(format!(
                        "manifest.json lists layer {}, which the archive does not hold",
                        printable(&format!("{member:?}"))
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let diffs: Vec<String> = layers.iter().filter_map(|(_, d)| d.clone()).collect();
    check_diff_ids(&diffs, diff_ids.as_deref(), &what)?;
    Ok((layers.into_iter().map(|(d, _)| d).collect(), config))
}

/// The uncompressed digest recorded for the unpacked layer `hex`, if any.
fn recorded_diff(root: &DataRoot, hex: &str) -> Option<String> {
    let path = root.path().join("index").join(format!("diff-{hex}"));
    let text = crate::dataroot::read_small(&path, 128).ok()?;
    let diff = String::from_utf8(text).ok()?;
    is_digest(diff.trim()).then(|| diff.trim().to_string())
}

/// Record that the layer `hex` has the uncompressed digest `diff`, so that
/// a later image naming that layer is checked against it without reading
/// the layer again.
fn remember_diff(root: &DataRoot, hex: &str, diff: &str) -> Result<()> {
    let path = root.dir("index")?.join(format!("diff-{hex}"));
    crate::dataroot::write_durably(&path, diff.as_bytes())
}

/// The `rootfs.diff_ids` of an image config: the sha256 of each layer's
/// uncompressed bytes, bottom first (empty if it lists none).
pub(super) fn config_diff_ids(bytes: &[u8]) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    value["rootfs"]["diff_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str())
                .map(|id| id.strip_prefix("sha256:").unwrap_or(id).to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A docker save archive names its layers by no digest of their bytes:
/// the config's `diff_ids` are what checks them. Each layer's uncompressed
/// digest must be the one the config lists at its place.
pub(super) fn check_diff_ids(
    diffs: &[String],
    listed: Option<&[String]>,
    what: &str,
) -> Result<()> {
    // An archive with no config, or one that lists none, is taken as a
    // root filesystem tarball is: unchecked.
    let Some(listed) = listed.filter(|l| !l.is_empty()) else {
        detail!(3, "{what}: no diff_ids to check its layers against");
        return Ok(());
    };
    if listed.len() != diffs.len() {
        return Err(Error::Invalid(format!(
            "{what}: its config lists {} layers, its manifest.json {}: the image is damaged",
            listed.len(),
            diffs.len()
        )));
    }
    for (n, (got, want)) in diffs.iter().zip(listed).enumerate() {
        if got != want {
            return Err(Error::Invalid(format!(
                "layer {} of {what} has the uncompressed digest sha256:{got}, not the \
                 sha256:{} its config's diff_ids say: the image is damaged or was altered",
                n + 1,
                printable(want)
            )));
        }
    }
    Ok(())
}

/// The largest image config read: a few kB in practice.
pub(super) const CONFIG_LIMIT: u64 = 4 << 20;

/// `a/../b/./c` → `b/c`, or None if it climbs above the archive's top.
fn normalise(path: &Path) -> Option<String> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for component in path.components() {
        match component {
            std::path::Component::Normal(part) => parts.push(part),
            std::path::Component::ParentDir => {
                parts.pop()?;
            }
            std::path::Component::CurDir => {}
            _ => return None,
        }
    }
    Some(
        parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
    )
}

/// What the index remembers of an image file: which file it was, and its layers.
#[derive(Serialize, Deserialize, PartialEq)]
struct Indexed {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    /// A rewrite in place can restore size and mtime (`touch -r`), not ctime.
    /// (0 in records written before it was kept.)
    #[serde(default)]
    ctime_ns: i128,
    layers: Vec<String>,
    /// The image's config, as read with its layers.
    #[serde(default)]
    config: Config,
}

fn index_file(root: &DataRoot, tarball: &Path, tag: Option<&str>) -> Result<PathBuf> {
    let mut hasher = Sha256::new();
    hasher.update(tarball.as_os_str().as_encoded_bytes());
    if let Some(tag) = tag {
        // One archive, several images: one record each.
        hasher.update(b"\0");
        hasher.update(tag.as_bytes());
    }
    let key = format!("{:x}", hasher.finalize());
    Ok(root.dir("index")?.join(format!("{key}.json")))
}

fn identity(tarball: &Path, layers: Vec<String>) -> Option<Indexed> {
    let meta = fs::metadata(tarball).ok()?;
    Some(Indexed {
        path: tarball.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        ctime_ns: meta.ctime() as i128 * 1_000_000_000 + meta.ctime_nsec() as i128,
        layers,
        config: Config::default(),
    })
}

/// Record in `record` which file `tarball` is (path, inode, size, mtime).
pub(super) fn remember_source(record: &Path, tarball: &Path) -> Result<()> {
    let Some(identity) = identity(tarball, Vec::new()) else {
        return Ok(());
    };
    let json = serde_json::to_vec(&identity).expect("the source record serialises");
    crate::dataroot::write_durably(record, &json)
}

/// Whether `tarball` is the very file recorded in `record` (true when
/// nothing was recorded).
pub(super) fn is_recorded_source(record: &Path, tarball: &Path) -> bool {
    let Ok(text) = crate::dataroot::read_small(record, INDEX_LIMIT) else {
        return !record.exists();
    };
    let recorded: Option<Indexed> = serde_json::from_slice(&text).ok();
    recorded.is_some_and(|r| {
        identity(tarball, Vec::new()).is_some_and(|mut now| {
            // A record from before ctime was kept: judge it without.
            if r.ctime_ns == 0 {
                now.ctime_ns = 0;
            }
            now == r
        })
    })
}

/// The largest index record we read.
const INDEX_LIMIT: u64 = 1 << 20;

/// A layer digest as stepbox writes it: 64 lowercase hex digits. Anything
/// else read back from index/ (`../../elsewhere`) is not one of our layers.
fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The layers this very file gave last time (same inode, size and mtime).
fn cached(root: &DataRoot, tarball: &Path, tag: Option<&str>) -> Option<(Vec<String>, Config)> {
    let text =
        crate::dataroot::read_small(&index_file(root, tarball, tag).ok()?, INDEX_LIMIT).ok()?;
    let indexed: Indexed = serde_json::from_slice(&text).ok()?;
    if !indexed.layers.iter().all(|d| is_digest(d)) {
        return None;
    }
    let mut now = identity(tarball, indexed.layers.clone())?;
    now.config = indexed.config.clone();
    (now == indexed).then_some((indexed.layers, indexed.config))
}

/// Every layer the index remembers an image file giving: images run by
/// path, and the tarballs in images/. `rmi` leaves these layers be.
pub(super) fn cached_layers(root: &DataRoot) -> HashSet<String> {
    let Ok(entries) = fs::read_dir(root.path().join("index")) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| crate::dataroot::read_small(&e.path(), INDEX_LIMIT).ok())
        .filter_map(|text| serde_json::from_slice::<Indexed>(&text).ok())
        .flat_map(|record| record.layers)
        .filter(|d| is_digest(d))
        .collect()
}

fn remember(
    root: &DataRoot,
    tarball: &Path,
    tag: Option<&str>,
    layers: &[String],
    config: &Config,
) -> Result<()> {
    let Some(mut record) = identity(tarball, layers.to_vec()) else {
        return Ok(());
    };
    record.config = config.clone();
    let path = index_file(root, tarball, tag)?;
    let json = serde_json::to_vec(&record).expect("the index record serialises");
    crate::dataroot::write_durably(&path, &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_root_filesystem_holds_deeper_paths_than_image_archives() {
        for root in [
            "bin/sh",
            "./etc/passwd",
            "usr/lib/x",
            "dev/console",
            "l/layer.tar/x",
        ] {
            assert!(only_in_a_root(root), "{root}");
        }
        for image in [
            "manifest.json",
            "./",
            "bin",
            "abc.json",
            "l/layer.tar",
            "./0123/json",
            "l/VERSION",
            "blobs/sha256/0123",
            "./blobs/sha256/",
        ] {
            assert!(!only_in_a_root(image), "{image}");
        }
    }

    #[test]
    fn a_digest_is_64_lowercase_hex_digits() {
        assert!(is_digest(&"ab01".repeat(16)));
    }

    #[test]
    fn a_path_is_not_a_digest() {
        assert!(!is_digest("../../outside"));
        assert!(!is_digest(&format!("../{}", "a".repeat(61))));
    }

    #[test]
    fn uppercase_or_short_digests_are_refused() {
        assert!(!is_digest(&"AB01".repeat(16)));
        assert!(!is_digest(&"ab01".repeat(15)));
        assert!(!is_digest(&"ab01".repeat(17)));
    }
}
