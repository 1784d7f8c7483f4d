//! The image store (ch5): images by name, their parts by digest.
//!
//! `load` and `commit` keep images the way an OCI image layout does, in
//! the data root:
//!
//! ```text
//! images/index.json ── busybox:latest, app:v1 … ──▶ blobs/sha256/<manifest>
//!                                                      ├──▶ blobs/sha256/<config>
//!                                                      └──▶ blobs/sha256/<layer> …
//! ```
//!
//! `images/index.json` is an OCI image index: one descriptor per name
//! (the name in its `org.opencontainers.image.ref.name` annotation), or
//! without a name for an image that has none left (`<none>` in `images`).
//! Every blob is stored under the sha256 of its bytes, computed as it is
//! written, and renamed into place whole; blobs shared by images are stored
//! once. An image's ID is its config's digest, as in Docker. Changes to the
//! index take the store's lock (`images/.lock`), and the index is replaced
//! by a rename, so a reader sees it whole.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use nix::fcntl::Flock;
use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType,
    Sha256Digest,
};
use sha2::{Digest as _, Sha256};

use super::reference::Reference;
use crate::dataroot::{self, DataRoot};
use crate::error::{printable, Error, Result};

/// The annotation that names an image in an index (the OCI spec's).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The largest images/index.json read: some 200 000 names.
const INDEX_LIMIT: u64 = 64 << 20;

/// How hard `commit --flatten` compresses its layer: at zstd's level 5 it
/// is no larger than `tar -czf`'s (gzip's level 6) on scripts/bench.sh's
/// files, where level 3's is larger on their text half.
const ZSTD_LEVEL: i32 = 5;

/// The input of each of zstd's threads: 1 MiB keeps commit's memory near
/// 18 MiB with 2 threads, 30 MiB with 4 (the default, 4 × the level's
/// window, took 74 MiB with 2).
const ZSTD_JOB: u32 = 1 << 20;

/// The data root's image store.
pub struct Store<'a> {
    root: &'a DataRoot,
    index: PathBuf,
    blobs: PathBuf,
    /// The store's lock, when this handle holds it for its whole life.
    held: Option<Flock<File>>,
    /// The blobs this handle stored that were not there before.
    created: std::cell::RefCell<Vec<PathBuf>>,
}

/// One image in the store: a name (or none) and its manifest.
#[derive(Debug, Clone)]
pub struct Entry {
    pub reference: Option<Reference>,
    pub manifest: Descriptor,
}

impl Entry {
    /// The manifest's hex digest.
    pub fn digest(&self) -> &str {
        self.manifest.digest().digest()
    }
}

/// An image read back from the store.
pub struct Stored {
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config's hex digest: the image's ID.
    pub id: String,
}

impl<'a> Store<'a> {
    /// The store of `root` (its directories made if missing).
    pub fn open(root: &'a DataRoot) -> Result<Store<'a>> {
        let images = root.dir("images")?;
        // blobs/ is made by the first write: reading an empty store makes nothing.
        let blobs = root.path().join("blobs").join("sha256");
        Ok(Store {
            root,
            index: images.join("index.json"),
            blobs,
            held: None,
            created: Default::default(),
        })
    }

    /// The store, its lock held until the handle is dropped: what `commit`
    /// and `load` use, so that `rmi`, which deletes the blobs no image
    /// names, never sees their blobs before their names.
    pub fn locked(root: &'a DataRoot) -> Result<Store<'a>> {
        let mut store = Store::open(root)?;
        store.held = Some(store.lock()?);
        Ok(store)
    }

    /// The lock, unless this handle holds it already.
    fn guard(&self) -> Result<Option<Flock<File>>> {
        match self.held {
            Some(_) => Ok(None),
            None => self.lock().map(Some),
        }
    }

    /// Hold the store's lock until the guard is dropped.
    pub fn lock(&self) -> Result<Flock<File>> {
        crate::dataroot::lock_file(&self.index.with_file_name(".lock"), false)
    }

    /// The store's lock, shared: what a run holds while it unpacks and
    /// takes hold of a stored image's layers, so that `rmi` waits.
    pub fn lock_shared(&self) -> Result<Option<Flock<File>>> {
        if self.held.is_some() {
            return Ok(None);
        }
        crate::dataroot::lock_file(&self.index.with_file_name(".lock"), true).map(Some)
    }

    /// Every image in the store, in the index's order.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let bytes = match dataroot::read_small(&self.index, INDEX_LIMIT) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("reading", &self.index, e)),
        };
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "{} is not an OCI image index ({e}): the store is damaged; \
                 move it away to start an empty one",
                self.index.display()
            ))
        })?;
        let mut entries = Vec::new();
        for manifest in index.manifests() {
            let reference = match manifest
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
            {
                // A name that is not one (edited by hand) is ignored, never used as a path.
                Some(name) => match Reference::parse(name) {
                    Ok(reference) => Some(reference),
                    Err(_) => continue,
                },
                None => None,
            };
            if !is_hex_digest(manifest.digest().digest()) {
                continue;
            }
            entries.push(Entry {
                reference,
                manifest: manifest.clone(),
            });
        }
        Ok(entries)
    }

    /// Replace the index with `entries` (under the lock).
    fn write_entries(&self, entries: &[Entry]) -> Result<()> {
        let manifests: Vec<Descriptor> = entries
            .iter()
            .map(|entry| {
                let mut descriptor = Descriptor::new(
                    MediaType::ImageManifest,
                    entry.manifest.size(),
                    entry.manifest.digest().clone(),
                );
                if let Some(reference) = &entry.reference {
                    descriptor.set_annotations(Some(HashMap::from([(
                        REF_NAME.to_string(),
                        reference.to_string(),
                    )])));
                }
                descriptor
            })
            .collect();
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| Error::Internal(format!("building the image index: {e}")))?;
        // Through a Value, whose maps are sorted: stable bytes.
        let value = serde_json::to_value(&index)
            .map_err(|e| Error::Internal(format!("writing the image index: {e}")))?;
        let json = serde_json::to_vec_pretty(&value).expect("a JSON value serialises");
        dataroot::write_durably(&self.index, &json)
    }

    /// The image `spec` names: a reference (`busybox`, `app:v1`), or an
    /// image ID (its first 12 or more hex digits).
    pub fn find(&self, spec: &str) -> Result<Option<Entry>> {
        let entries = self.entries()?;
        if let Ok(reference) = Reference::parse(spec) {
            if let Some(entry) = entries
                .iter()
                .find(|e| e.reference.as_ref() == Some(&reference))
            {
                return Ok(Some(entry.clone()));
            }
        }
        let id = spec.strip_prefix("sha256:").unwrap_or(spec);
        if id.len() < 12 || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut found: Option<(Entry, String)> = None;
        for entry in entries {
            let Ok(image) = self.read(&entry) else {
                continue;
            };
            if image.id.starts_with(id) {
                match &found {
                    // The same ID in two manifests (one image, stored twice) is one image.
                    Some((_, other_id)) if *other_id != image.id => {
                        return Err(Error::Invalid(format!(
                            "image ID {id} is the start of several images' IDs: give more of it"
                        )));
                    }
                    Some(_) => {}
                    None => found = Some((entry, image.id)),
                }
            }
        }
        Ok(found.map(|(entry, _)| entry))
    }

    /// The path of the blob `hex`.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.blobs.join(hex)
    }

    /// The store's blobs, to be read as an image layout's are (checked
    /// against their descriptors as they are read).
    pub fn blobs(&self) -> super::oci::Blobs {
        super::oci::Blobs::Dir(self.root.path().to_path_buf())
    }

    /// A JSON blob of the store, parsed (checked as it is read).
    fn json<T: serde::de::DeserializeOwned>(
        &self,
        descriptor: &Descriptor,
        what: &str,
    ) -> Result<T> {
        self.blobs().json(descriptor, what)
    }

    /// The manifest and config of `entry`.
    pub fn read(&self, entry: &Entry) -> Result<Stored> {
        let what = match &entry.reference {
            Some(reference) => format!("image {reference}"),
            None => format!("image {}", &entry.digest()[..12]),
        };
        let manifest: ImageManifest = self.json(&entry.manifest, &format!("{what}'s manifest"))?;
        let config: ImageConfiguration =
            self.json(manifest.config(), &format!("{what}'s config"))?;
        let id = manifest.config().digest().digest().to_string();
        Ok(Stored {
            manifest,
            config,
            id,
        })
    }

    /// Store the bytes `reader` gives as a blob, returning its hex digest
    /// and size. Written beside the store and renamed into place only when
    /// whole (and, for a checked reader, only once it has checked them).
    pub fn put(&self, reader: impl Read) -> Result<(String, u64)> {
        self.make_blobs_dir()?;
        let scratch = self.root.scratch("blob")?;
        let temp = scratch.path().join("blob");
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io("creating", &temp, e))?;
        let mut hashing = Hashing::new(reader);
        let size = io::copy(&mut hashing, &mut file).map_err(|e| {
            if super::oci::checked_failure(&e) {
                Error::Invalid(printable(&e.to_string()))
            } else {
                Error::io("storing a blob in", &self.blobs, e)
            }
        })?;
        file.sync_all()
            .map_err(|e| Error::io("writing", &temp, e))?;
        let hex = hashing.hex();
        let dest = self.blob_path(&hex);
        if !dest.exists() {
            fs::rename(&temp, &dest).map_err(|e| Error::io("storing", &dest, e))?;
            self.created.borrow_mut().push(dest);
        }
        Ok((hex, size))
    }

    /// Store what `write` writes as a blob (plain): a layer being made.
    pub fn create<T>(
        &self,
        write: impl FnOnce(&mut dyn Write) -> Result<T>,
    ) -> Result<(Created, T)> {
        self.create_with(false, write)
    }

    /// Store what `write` writes as a zstd-compressed blob.
    pub fn create_zstd<T>(
        &self,
        write: impl FnOnce(&mut dyn Write) -> Result<T>,
    ) -> Result<(Created, T)> {
        self.create_with(true, write)
    }

    fn create_with<T>(
        &self,
        compress: bool,
        write: impl FnOnce(&mut dyn Write) -> Result<T>,
    ) -> Result<(Created, T)> {
        self.make_blobs_dir()?;
        let scratch = self.root.scratch("blob")?;
        let temp = scratch.path().join("blob");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io("creating", &temp, e))?;
        let failed = |e: io::Error| Error::io("writing the new image, in", &self.blobs, e);
        let zstd_failed = |e: io::Error| failed(zstd_error(e));
        // Hashed as stored (the blob's digest) and, compressed, as written
        // (the layer's diff_id, which the config lists).
        let mut stored = HashingWriter::new(io::BufWriter::with_capacity(1 << 16, file));
        let (result, diff_id) = if compress {
            let mut encoder =
                zstd::stream::write::Encoder::new(&mut stored, ZSTD_LEVEL).map_err(zstd_failed)?;
            // zstd's own threads compress while this one walks the tree and
            // hashes: the output is the same for any number of them.
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
            encoder.multithread(threads as u32).map_err(zstd_failed)?;
            encoder
                .set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB))
                .map_err(zstd_failed)?;
            let mut plain = HashingWriter::new(ZstdErrors(encoder));
            let result = write(&mut plain)?;
            let diff_id = plain.hex();
            plain.inner.0.finish().map_err(zstd_failed)?;
            (result, diff_id)
        } else {
            (write(&mut stored)?, String::new())
        };
        let (hex, size) = (stored.hex(), stored.written);
        stored
            .inner
            .into_inner()
            .map_err(|e| failed(e.into_error()))?
            .sync_all()
            .map_err(failed)?;
        let dest = self.blob_path(&hex);
        if !dest.exists() {
            fs::rename(&temp, &dest).map_err(|e| Error::io("storing", &dest, e))?;
            self.created.borrow_mut().push(dest);
        }
        let diff_id = if compress { diff_id } else { hex.clone() };
        Ok((Created { hex, size, diff_id }, result))
    }

    fn make_blobs_dir(&self) -> Result<()> {
        self.root.dir("blobs")?;
        dataroot::create_private_dir(&self.blobs)
    }

    /// Store `value` as a JSON blob with media type `kind`.
    pub fn put_json(&self, value: &impl serde::Serialize, kind: MediaType) -> Result<Descriptor> {
        let bytes = serde_json::to_vec(value).expect("an OCI document serialises");
        let (hex, size) = self.put(&bytes[..])?;
        Ok(descriptor(kind, &hex, size))
    }

    /// Name `manifest` `reference` (under the lock), taking the name from
    /// any image that had it; an image left with no name stays, as `<none>`.
    pub fn tag(&self, reference: &Reference, manifest: &Descriptor) -> Result<()> {
        self.name_all(&[(Some(reference.clone()), manifest.clone())])
    }

    /// Add `manifest` with no name, unless the store has it already.
    pub fn add_unnamed(&self, manifest: &Descriptor) -> Result<()> {
        self.name_all(&[(None, manifest.clone())])
    }

    /// [`Store::tag`] (or, without a name, [`Store::add_unnamed`]) each of
    /// `images`, in order, with one write of the index (under the lock).
    pub fn name_all(&self, images: &[(Option<Reference>, Descriptor)]) -> Result<()> {
        let _lock = self.guard()?;
        let mut entries = self.entries()?;
        for (reference, manifest) in images {
            match reference {
                Some(reference) => self.name_one(&mut entries, reference, manifest),
                None => {
                    if !entries
                        .iter()
                        .any(|e| e.digest() == manifest.digest().digest())
                    {
                        entries.push(Entry {
                            reference: None,
                            manifest: manifest.clone(),
                        });
                    }
                }
            }
        }
        self.write_entries(&entries)
    }

    fn name_one(&self, entries: &mut Vec<Entry>, reference: &Reference, manifest: &Descriptor) {
        let digest = manifest.digest().digest();
        if entries
            .iter()
            .any(|e| e.reference.as_ref() == Some(reference) && e.digest() == digest)
        {
            return;
        }
        let mut orphan = None;
        entries.retain(|e| {
            if e.reference.as_ref() == Some(reference) {
                orphan = Some(e.clone());
                return false;
            }
            // An unnamed entry of this very image: the name replaces it.
            !(e.reference.is_none() && e.digest() == digest)
        });
        if let Some(mut orphan) = orphan {
            // It stays, unnamed, unless it has other names, or is the same
            // image (the same config: Docker's image ID) in another manifest.
            let same_id = match (
                self.read(&orphan),
                self.json::<ImageManifest>(manifest, "manifest"),
            ) {
                (Ok(old), Ok(new)) => old.id == new.config().digest().digest(),
                _ => false,
            };
            if !same_id && !entries.iter().any(|e| e.digest() == orphan.digest()) {
                orphan.reference = None;
                entries.push(orphan);
            }
        }
        entries.push(Entry {
            reference: Some(reference.clone()),
            manifest: manifest.clone(),
        });
    }

    /// Remove the blobs this handle stored (a `load` that failed): none is
    /// named by the index yet, and the store's lock is held.
    pub fn discard_created(&self) {
        for path in self.created.borrow_mut().drain(..) {
            let _ = fs::remove_file(path);
        }
    }

    /// `rmi`: remove the name `entry` has (or, for an unnamed image, the
    /// image). When no name of its image is left and no container in
    /// `in_use` uses it, the image goes, with every blob and unpacked
    /// layer no other image or container needs. Returns what was deleted.
    pub fn remove(
        &self,
        entry: &Entry,
        in_use: &HashSet<String>,
        used_layers: &HashSet<String>,
        force: bool,
    ) -> Result<Removed> {
        // Layers that images run by path (a tarball in images/ too) gave.
        let cached = super::layers::cached_layers(self.root);
        let _lock = self.guard()?;
        let mut entries = self.entries()?;
        let digest = entry.digest().to_string();
        let others = entries
            .iter()
            .filter(|e| e.digest() == digest && e.reference != entry.reference)
            .count();
        let mut removed = Removed::default();
        if others == 0 && in_use.contains(&digest) && !force {
            return Err(Error::Conflict(format!(
                "image {} is used by a container: remove the container first (rm -f NAME), \
                 or untag the image anyway with rmi -f",
                shown(entry)
            )));
        }
        entries.retain(|e| !(e.digest() == digest && e.reference == entry.reference));
        if let Some(reference) = &entry.reference {
            removed.untagged.push(reference.to_string());
        }
        if others > 0 {
            self.write_entries(&entries)?;
            return Ok(removed);
        }
        if in_use.contains(&digest) {
            // Forced: the image stays, unnamed, for the container that uses it.
            entries.push(Entry {
                reference: None,
                manifest: entry.manifest.clone(),
            });
            self.write_entries(&entries)?;
            return Ok(removed);
        }
        // An entry whose manifest or config cannot be read (a damaged
        // store) can still be removed; what it used is swept below.
        let image = self.read(entry).ok();
        self.write_entries(&entries)?;
        removed.deleted.push(match &image {
            Some(image) => image.id.clone(),
            None => entry.digest().to_string(),
        });
        // What the images that stay still need; every other blob goes
        // (those of this image, and any left by a base that was stored
        // only to be built on). Under the lock: commit and load hold it
        // from their first blob to their name. If any image that stays
        // cannot be read, what it needs is unknown: nothing is swept.
        let mut needed: HashSet<String> = HashSet::new();
        for other in &entries {
            needed.insert(other.digest().to_string());
            match self.read(other) {
                Ok(kept) => {
                    needed.insert(kept.manifest.config().digest().digest().to_string());
                    for layer in kept.manifest.layers() {
                        needed.insert(layer.digest().digest().to_string());
                    }
                }
                Err(error) => {
                    crate::error::notice(format!(
                        "nothing swept from {}: image {} cannot be read ({error}); rmi it",
                        self.blobs.display(),
                        shown(other)
                    ));
                    return Ok(removed);
                }
            }
        }
        let listing =
            fs::read_dir(&self.blobs).map_err(|e| Error::io("listing", &self.blobs, e))?;
        for blob in listing.flatten() {
            let name = blob.file_name().to_string_lossy().into_owned();
            let is_file = blob.file_type().is_ok_and(|t| t.is_file());
            if is_file && is_hex_digest(&name) && !needed.contains(&name) {
                fs::remove_file(blob.path()).map_err(|e| Error::io("removing", blob.path(), e))?;
            }
        }
        // And every unpacked layer nothing needs any more: no image of the
        // store, no container's record, no image run by path (index/), and
        // no run holding it now (layers::hold).
        drop(image);
        for dir in super::mapped::all_layer_dirs(self.root) {
            let Ok(listing) = fs::read_dir(&dir) else {
                continue;
            };
            for layer in listing.flatten() {
                let hex = layer.file_name().to_string_lossy().into_owned();
                let is_dir = layer.file_type().is_ok_and(|t| t.is_dir());
                if !is_dir
                    || !is_hex_digest(&hex)
                    || needed.contains(&hex)
                    || used_layers.contains(&hex)
                    || cached.contains(&hex)
                {
                    continue;
                }
                let unpacked = layer.path();
                if super::layers::in_use(&unpacked) {
                    crate::detail!(5, "layer {hex} is in use by a running container: kept");
                    continue;
                }
                // A layer unpacked under a subordinate range holds files
                // the caller cannot remove: said, not fatal (the image is gone).
                match dataroot::remove_tree(&unpacked) {
                    Ok(()) => removed.layers += 1,
                    Err(e) => crate::error::notice(format!(
                        "cannot remove the unpacked layer {}: {e}",
                        unpacked.display()
                    )),
                }
            }
        }
        Ok(removed)
    }
}

/// A blob written by [`Store::create`]: its digest and size, and the
/// digest of its uncompressed bytes.
#[derive(Debug)]
pub struct Created {
    pub hex: String,
    pub size: u64,
    pub diff_id: String,
}

/// What `rmi` did.
#[derive(Debug, Default)]
pub struct Removed {
    pub untagged: Vec<String>,
    pub deleted: Vec<String>,
    /// Unpacked layer directories removed.
    pub layers: usize,
}

/// How an entry is named in messages: its reference, or its digest's start.
pub fn shown(entry: &Entry) -> String {
    match &entry.reference {
        Some(reference) => reference.to_string(),
        None => entry.digest()[..12].to_string(),
    }
}

/// A descriptor of the blob `hex` of `size` bytes.
pub fn descriptor(kind: MediaType, hex: &str, size: u64) -> Descriptor {
    let digest: Sha256Digest = hex.parse().expect("a sha256 hex digest");
    Descriptor::new(kind, size, digest)
}

/// 64 lowercase hex digits.
pub fn is_hex_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A reader that hashes every byte it passes on.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// The hex digest of what passed so far.
    pub fn hex(&self) -> String {
        format!("{:x}", self.hasher.clone().finalize())
    }

    /// The reader, to read past the hasher.
    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// As [`Hashing`], with the hashing on a second thread: on a machine with
/// two cores it overlaps the unpacking, which is mostly the kernel's work.
/// The reader is read in big chunks, which the two threads pass each other
/// (shared, not copied), and reads are served from them: one message per
/// chunk, and no byte copied more than a plain read copies it. A few chunks
/// go round and round: the reading waits for the hashing beyond that.
///
/// [`ParallelHashing::new`] reads on the calling thread and gives each
/// chunk to the hashing thread; [`ParallelHashing::reading`] leaves the
/// reading to the hashing thread too, which hands back chunks read and
/// hashed. The thread ends with [`ParallelHashing::hex`], or when this is
/// dropped: none outlives the unpack (a clone must find us alone).
pub struct ParallelHashing<R> {
    /// The reader, when the calling thread reads it.
    inner: Option<R>,
    /// The chunk being read from, with how much of it holds data, and how
    /// much of that was read.
    current: Option<(Arc<Vec<u8>>, usize)>,
    pos: usize,
    /// Chunks made so far (at most [`CHUNKS`]).
    made: usize,
    /// Chunks to the thread: to hash, or to read into.
    to_thread: Option<std::sync::mpsc::Sender<(Arc<Vec<u8>>, usize)>>,
    /// Chunks from the thread: hashed (to reuse), or read and hashed.
    from_thread: std::sync::mpsc::Receiver<io::Result<(Arc<Vec<u8>>, usize)>>,
    /// The thread's reading failed: every later read fails too.
    failed: bool,
    worker: Option<std::thread::JoinHandle<Sha256>>,
}

/// Bytes read at once by [`ParallelHashing`]: below glibc's threshold for
/// a mapping of its own (128 KiB), which costs page faults each time.
const CHUNK: usize = 120 << 10;

/// How many chunks [`ParallelHashing`] has at most: a few MiB ahead, so
/// that neither thread waits for the other when the scheduler takes one
/// away for a while.
const CHUNKS: usize = 16;

type Chunks = (
    std::sync::mpsc::Sender<(Arc<Vec<u8>>, usize)>,
    std::sync::mpsc::Receiver<(Arc<Vec<u8>>, usize)>,
);

impl<R> ParallelHashing<R> {
    /// Read `inner` here, hash on a second thread.
    pub fn new(inner: R) -> ParallelHashing<R> {
        let (to_thread, received): Chunks = std::sync::mpsc::channel();
        let (back, from_thread) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            for (chunk, len) in received {
                hasher.update(&chunk[..len]);
                // Gone only when the reading side is: then nothing is reused.
                let _ = back.send(Ok((chunk, 0)));
            }
            hasher
        });
        ParallelHashing {
            inner: Some(inner),
            current: None,
            pos: 0,
            made: 0,
            to_thread: Some(to_thread),
            from_thread,
            failed: false,
            worker: Some(worker),
        }
    }

    /// Read `inner` and hash it on a second thread. That thread reads
    /// ahead: the digest is of everything it read, so read to the end
    /// before [`ParallelHashing::hex`] (as an unpack does).
    pub fn reading(mut inner: R) -> ParallelHashing<R>
    where
        R: Read + Send + 'static,
    {
        let (to_thread, received): Chunks = std::sync::mpsc::channel();
        let (back, from_thread) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            for (chunk, _) in received {
                // Ours alone: the reading side lets go of a chunk before
                // it sends it back to be read into.
                let mut chunk = Arc::try_unwrap(chunk).unwrap_or_else(|_| vec![0; CHUNK]);
                let len = match read_retrying(&mut inner, &mut chunk) {
                    Ok(len) => len,
                    Err(e) => {
                        let _ = back.send(Err(e));
                        break;
                    }
                };
                hasher.update(&chunk[..len]);
                if back.send(Ok((Arc::new(chunk), len))).is_err() || len == 0 {
                    break;
                }
            }
            hasher
        });
        for _ in 0..CHUNKS {
            let _ = to_thread.send((Arc::new(vec![0; CHUNK]), 0));
        }
        ParallelHashing {
            inner: None,
            current: None,
            pos: 0,
            made: CHUNKS,
            to_thread: Some(to_thread),
            from_thread,
            failed: false,
            worker: Some(worker),
        }
    }

    /// The hex digest of what passed; the thread ends here.
    pub fn hex(&mut self) -> Result<String> {
        drop(self.to_thread.take());
        match self.worker.take().map(|worker| worker.join()) {
            Some(Ok(hasher)) => Ok(format!("{:x}", hasher.finalize())),
            // The thread only hashes: it cannot fail but by a bug.
            _ => Err(Error::Internal("the hashing thread ended early".into())),
        }
    }

    /// A chunk to read into: one the thread has hashed, a new one while
    /// fewer than [`CHUNKS`] exist, or else the next one the thread hashes.
    fn free_chunk(&mut self) -> Vec<u8> {
        let mut back = self.from_thread.try_recv().ok();
        if back.is_none() && self.made >= CHUNKS {
            back = self.from_thread.recv().ok();
        }
        // Ours alone: the thread sends a chunk back once it is done with
        // it, and we let go of the current one before asking for another.
        match back.and_then(|back| Arc::try_unwrap(back.ok()?.0).ok()) {
            Some(chunk) => chunk,
            None => {
                self.made += 1;
                vec![0; CHUNK]
            }
        }
    }
}

/// One read, again if a signal interrupted it.
pub fn read_retrying(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl<R: Read> io::BufRead for ParallelHashing<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let exhausted = match &self.current {
            Some((_, len)) => self.pos >= *len,
            None => true,
        };
        if exhausted {
            if self.failed {
                return Err(io::Error::other("the image could not be read"));
            }
            let done = self.current.take();
            self.pos = 0;
            match self.inner.as_mut() {
                Some(_) => {
                    drop(done);
                    let mut chunk = self.free_chunk();
                    let inner = self.inner.as_mut().expect("read here");
                    let len = match read_retrying(inner, &mut chunk) {
                        Ok(len) => len,
                        Err(e) => {
                            self.failed = true;
                            return Err(e);
                        }
                    };
                    let chunk = Arc::new(chunk);
                    if let Some(to_thread) = &self.to_thread {
                        // The thread stops only when we drop `to_thread`.
                        let _ = to_thread.send((Arc::clone(&chunk), len));
                    }
                    self.current = Some((chunk, len));
                }
                None => {
                    if let (Some((chunk, _)), Some(to_thread)) = (done, &self.to_thread) {
                        let _ = to_thread.send((chunk, 0));
                    }
                    // Closed once the thread has read the end (or failed).
                    match self.from_thread.recv() {
                        Ok(Ok(read)) => self.current = Some(read),
                        Ok(Err(e)) => {
                            self.failed = true;
                            return Err(e);
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        Ok(match &self.current {
            Some((chunk, len)) => &chunk[self.pos..*len],
            None => &[],
        })
    }

    fn consume(&mut self, amount: usize) {
        self.pos += amount;
    }
}

impl<R: Read> Read for ParallelHashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = io::BufRead::fill_buf(self)?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R> Drop for ParallelHashing<R> {
    fn drop(&mut self) {
        drop(self.to_thread.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// A writer that hashes and counts every byte it passes on.
pub struct HashingWriter<W> {
    pub inner: W,
    hasher: Sha256,
    pub written: u64,
}

impl<W> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    pub fn hex(&self) -> String {
        format!("{:x}", self.hasher.clone().finalize())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A zstd encoder whose own errors (not the file's) say they are zstd's,
/// and, for memory, what to do.
struct ZstdErrors<W: Write>(W);

impl<W: Write> Write for ZstdErrors<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(zstd_error)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(zstd_error)
    }
}

fn zstd_error(error: io::Error) -> io::Error {
    if error.raw_os_error().is_some() {
        return error;
    }
    let hint = if error.to_string().contains("memory") {
        " (its threads need 20 to 30 MiB: under a memory limit such as ulimit -v, commit without --flatten)"
    } else {
        ""
    };
    io::Error::other(format!("zstd: {error}{hint}"))
}
