//! `load` and `save` (ch5): images into the store from an archive, and out
//! of it into one, in the formats Docker, podman, skopeo and umoci read
//! (umoci 0.4 reads no zstd layer, which a flattened commit's is).
//!
//! `load` takes a `docker save` archive (any age: its `manifest.json` names
//! each image's config, tags and layers), an oci-archive or an OCI image
//! layout directory (its `index.json` names each image's manifest). Every
//! blob is copied into the store, checked against the digest and size its
//! descriptor gives; a `docker save` archive of old has no manifests, so
//! one is written for each image, naming its blobs by the digests found.
//!
//! `save` writes what Docker ≥ 25 writes: a tar that is an OCI image
//! layout (`oci-layout`, `index.json`, `blobs/sha256/…`) and a `docker
//! save` archive at once (`manifest.json` naming the same blobs).

use std::collections::{HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use oci_spec::image::{
    Arch, Descriptor, ImageConfiguration, ImageConfigurationBuilder, ImageManifest,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use super::layers::{self, Contents, SavedImage};
use super::reference::Reference;
use super::store::{self, Store};
use super::{oci, Compression};
use crate::error::{printable, Error, Result};

/// One image `load` stored: its manifest, and the names it was given.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Descriptor,
    pub names: Vec<Reference>,
    /// Names the archive gave that are not references stepbox can store.
    pub unusable: Vec<String>,
}

/// Store every image of the archive (or layout directory) at `path`, and
/// name each as the archive does.
pub fn load(store: &Store, path: &Path) -> Result<Vec<Loaded>> {
    let what = path.display().to_string();
    fs::metadata(path).map_err(|e| {
        Error::Invalid(format!(
            "{what}: {e}: give an image archive (docker save, oci-archive) or an OCI layout directory"
        ))
    })?;
    let loaded = match contents_of(path)? {
        Contents::Oci(blobs) => load_oci(store, blobs, &what),
        Contents::Saved(images) => load_saved(store, path, images),
        Contents::Flat => {
            return Err(Error::Invalid(format!(
                "{what} is a root filesystem, not a saved image (it has no manifest.json or \
                 index.json): run it by path (run {what} …), as docker import would take it"
            )))
        }
    };
    // Nothing half-made: a load that fails takes back the blobs it stored.
    let loaded = loaded.inspect_err(|_| store.discard_created())?;
    let mut names = Vec::new();
    for image in &loaded {
        if image.names.is_empty() {
            names.push((None, image.manifest.clone()));
        }
        for name in &image.names {
            names.push((Some(name.clone()), image.manifest.clone()));
        }
    }
    store.name_all(&names)?;
    Ok(loaded)
}

/// What the archive or directory `path` holds.
fn contents_of(path: &Path) -> Result<Contents> {
    if !path.is_dir() {
        return layers::contents(path);
    }
    Ok(match oci::Blobs::in_dir(path) {
        Some(blobs) => Contents::Oci(blobs),
        None => Contents::Flat,
    })
}

/// The reference an archive's name for an image is, if it is one: a whole
/// name (a tag alone, as `ref.name` often is, names no image). Docker Hub's
/// implicit prefix is dropped, as `docker images` shows it.
fn reference_of(name: &str) -> Option<Reference> {
    if !name.contains([':', '/']) {
        return None;
    }
    let short = name
        .strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name);
    Reference::parse(short).ok()
}

/// Split an archive's names into references and the rest.
fn sort_names(names: &[String]) -> (Vec<Reference>, Vec<String>) {
    let mut good: Vec<Reference> = Vec::new();
    let mut bad = Vec::new();
    for name in names {
        match reference_of(name) {
            Some(reference) if !good.contains(&reference) => good.push(reference),
            Some(_) => {}
            None => bad.push(printable(name)),
        }
    }
    // A tag alone beside a whole name (Docker ≥ 25 writes both) says nothing more.
    if !good.is_empty() {
        bad.retain(|tag| !good.iter().any(|r| r.tag == *tag));
    }
    (good, bad)
}

/// Copy the blob `descriptor` names from `blobs` into the store (checked
/// as it is read).
fn copy_blob(store: &Store, blobs: &oci::Blobs, descriptor: &Descriptor, what: &str) -> Result<()> {
    let hex = descriptor.digest().digest();
    if store::is_hex_digest(hex) && store.blob_path(hex).is_file() {
        return Ok(());
    }
    store.put(blobs.blob(descriptor, what)?)?;
    Ok(())
}

fn load_oci(store: &Store, blobs: oci::Blobs, what: &str) -> Result<Vec<Loaded>> {
    let index = oci::index(&blobs, what)?;
    if index.manifests().is_empty() {
        return Err(Error::Invalid(format!(
            "image {what}: its index lists no manifest: the layout holds no image"
        )));
    }
    let mut loaded = Vec::new();
    for (n, listed) in index.manifests().iter().enumerate() {
        let shown = format!("{what} (image {} of {})", n + 1, index.manifests().len());
        let image = oci::open_manifest(blobs_again(&blobs), listed, &shown)?;
        for (i, layer) in image.manifest.layers().iter().enumerate() {
            oci::check_layer_type(layer, &format!("layer {} of {shown}", i + 1))?;
            copy_blob(store, &blobs, layer, &format!("layer {} of {shown}", i + 1))?;
        }
        copy_blob(
            store,
            &blobs,
            image.manifest.config(),
            &format!("{shown}'s config"),
        )?;
        // The manifest itself, as the archive has it (a nested index
        // was resolved to this platform's manifest).
        copy_blob(store, &blobs, &image.digest, &format!("{shown}'s manifest"))?;
        validate_config(
            store,
            image.manifest.config(),
            image.manifest.layers().len(),
            &shown,
        )?;
        let (names, unusable) = sort_names(&oci::names(listed));
        let mut manifest = image.digest.clone();
        manifest.set_annotations(None);
        loaded.push(Loaded {
            manifest,
            names,
            unusable,
        });
    }
    Ok(loaded)
}

/// The same blobs again (a layout in a directory or in an archive).
fn blobs_again(blobs: &oci::Blobs) -> oci::Blobs {
    match blobs {
        oci::Blobs::Dir(dir) => oci::Blobs::Dir(dir.clone()),
        oci::Blobs::Archive { path, members } => oci::Blobs::Archive {
            path: path.clone(),
            members: members.clone(),
        },
    }
}

/// What a member of a docker save archive became in the store.
struct Member {
    hex: String,
    size: u64,
    compression: Compression,
}

fn load_saved(store: &Store, tarball: &Path, images: Vec<SavedImage>) -> Result<Vec<Loaded>> {
    let what = tarball.display().to_string();
    let mut wanted: HashSet<&str> = HashSet::new();
    for image in &images {
        wanted.extend(image.layers.iter().map(String::as_str));
        wanted.extend(image.config.as_deref());
    }
    let mut stored: HashMap<String, Member> = HashMap::new();
    let links = layers::saved_members(tarball, &wanted, |path, entry| {
        let mut reader = BufReader::with_capacity(1 << 16, entry);
        let start = reader.fill_buf().map_err(super::unpack::not_a_tar)?;
        let compression = Compression::of(start);
        let (hex, size) = store.put(reader)?;
        stored.insert(
            path.to_string(),
            Member {
                hex,
                size,
                compression,
            },
        );
        Ok(())
    })?;
    let member = |name: &str| -> Result<&Member> {
        stored
            .get(&layers::resolve_link(&links, name))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "image {what}: manifest.json lists {}, which the archive does not hold",
                    printable(&format!("{name:?}"))
                ))
            })
    };
    let mut loaded = Vec::new();
    for image in &images {
        let mut layers = Vec::new();
        for (n, name) in image.layers.iter().enumerate() {
            let layer = member(name)?;
            let kind = match layer.compression {
                Compression::None => MediaType::ImageLayer,
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::Zstd => MediaType::ImageLayerZstd,
                other => {
                    return Err(Error::Invalid(format!(
                        "layer {} of image {what} is {other:?}-compressed: stepbox reads \
                         plain, gzip and zstd layers",
                        n + 1
                    )))
                }
            };
            layers.push(store::descriptor(kind, &layer.hex, layer.size));
        }
        let config = match image.config.as_deref() {
            Some(name) => {
                let config = member(name)?;
                check_layers(store, &what, &image.layers, &config.hex, &member)?;
                store::descriptor(MediaType::ImageConfig, &config.hex, config.size)
            }
            None => {
                return Err(Error::Invalid(format!(
                    "image {what}: manifest.json names no Config for an image: re-save it"
                )))
            }
        };
        let manifest = build_manifest(config, layers)?;
        let manifest = store.put_json(&manifest, MediaType::ImageManifest)?;
        let (names, unusable) = sort_names(image.tags());
        loaded.push(Loaded {
            manifest,
            names,
            unusable,
        });
    }
    Ok(loaded)
}

/// A docker save archive's layers, checked against its config's
/// `diff_ids` (the digests of their uncompressed bytes): its only names for
/// them that are digests.
fn check_layers<'m>(
    store: &Store,
    what: &str,
    layers: &[String],
    config: &str,
    member: &impl Fn(&str) -> Result<&'m Member>,
) -> Result<()> {
    let path = store.blob_path(config);
    let bytes = crate::dataroot::read_small(&path, layers::CONFIG_LIMIT)
        .map_err(|e| Error::io("reading", &path, e))?;
    parse_config(&bytes, layers.len(), what)?;
    let listed = layers::config_diff_ids(&bytes);
    let mut diffs = Vec::new();
    for name in layers {
        let layer = member(name)?;
        diffs.push(match layer.compression {
            Compression::None => layer.hex.clone(),
            _ => {
                let blob = store.blob_path(&layer.hex);
                let mut hashing = store::Hashing::new(super::open_tarball(&blob)?);
                std::io::copy(&mut hashing, &mut std::io::sink())
                    .map_err(|e| Error::io("reading", &blob, e))?;
                hashing.hex()
            }
        });
    }
    layers::check_diff_ids(&diffs, Some(&listed), &format!("image {what}"))
}

/// The config blob `descriptor` names in the store, checked as `run` and
/// `images` will read it: an OCI image config, with one diff_id a layer.
fn validate_config(
    store: &Store,
    descriptor: &Descriptor,
    layers: usize,
    what: &str,
) -> Result<()> {
    let path = store.blob_path(descriptor.digest().digest());
    let bytes = crate::dataroot::read_small(&path, layers::CONFIG_LIMIT)
        .map_err(|e| Error::io("reading", &path, e))?;
    parse_config(&bytes, layers, what)
}

/// `bytes` as an image config: what oci-spec reads (architecture, os,
/// rootfs), what stepbox honours (config::Config), and as many diff_ids as
/// the image has layers.
fn parse_config(bytes: &[u8], layers: usize, what: &str) -> Result<()> {
    let parsed: ImageConfiguration = serde_json::from_slice(bytes).map_err(|e| {
        Error::Invalid(format!(
            "image {what}'s config is not an OCI image config ({}): the image is damaged",
            printable(&e.to_string())
        ))
    })?;
    super::Config::from_blob(bytes, &format!("image {what}"))?;
    let listed = parsed.rootfs().diff_ids().len();
    if listed != layers {
        return Err(Error::Invalid(format!(
            "image {what}: its config lists {listed} layers (diff_ids), its manifest {layers}: \
             the image is damaged or was altered"
        )));
    }
    Ok(())
}

/// An OCI image manifest listing `config` and `layers`.
pub fn build_manifest(config: Descriptor, layers: Vec<Descriptor>) -> Result<ImageManifest> {
    ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config)
        .layers(layers)
        .build()
        .map_err(|e| Error::Internal(format!("building a manifest: {e}")))
}

/// The config of an image that came with none (a root filesystem
/// tarball): this machine's platform, and its layers' uncompressed digests.
pub fn bare_config(diff_ids: Vec<String>) -> Result<ImageConfiguration> {
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(diff_ids)
        .build()
        .map_err(|e| Error::Internal(format!("building a config: {e}")))?;
    ImageConfigurationBuilder::default()
        .architecture(Arch::default())
        .os(Os::Linux)
        .rootfs(rootfs)
        .build()
        .map_err(|e| Error::Internal(format!("building a config: {e}")))
}

/// Store the root filesystem tarball `path` as an image of one layer with
/// a bare config (not named in the index): what `commit` builds on when
/// the container ran a root filesystem tarball. Its layer is the file as
/// it is, so its digest is the one its unpacked layer has.
pub fn store_flat(store: &Store, path: &Path) -> Result<Descriptor> {
    let (file, size) = super::open_regular(path)?;
    let (hex, stored) = store.put(file.take(size))?;
    let compression = {
        let mut start = [0u8; 6];
        let got = fs::File::open(store.blob_path(&hex))
            .and_then(|mut f| f.read(&mut start))
            .map_err(|e| Error::io("reading", store.blob_path(&hex), e))?;
        Compression::of(&start[..got])
    };
    let (kind, diff_id) = match compression {
        Compression::None => (MediaType::ImageLayer, hex.clone()),
        _ => {
            // The config names the uncompressed layer.
            let mut hashing = store::Hashing::new(super::open_tarball(&store.blob_path(&hex))?);
            std::io::copy(&mut hashing, &mut std::io::sink())
                .map_err(|e| Error::io("reading", path, e))?;
            let kind = match compression {
                Compression::Zstd => MediaType::ImageLayerZstd,
                _ => MediaType::ImageLayerGzip,
            };
            (kind, hashing.hex())
        }
    };
    let config = bare_config(vec![format!("sha256:{diff_id}")])?;
    let config = store.put_json(&config, MediaType::ImageConfig)?;
    let layer = store::descriptor(kind, &hex, stored);
    let manifest = build_manifest(config, vec![layer])?;
    store.put_json(&manifest, MediaType::ImageManifest)
}

/// Store the image archive `path` (the one of `tag`) without naming it:
/// what `commit` builds on when the container ran an archive by path.
pub fn store_archive(store: &Store, path: &Path, tag: Option<&str>) -> Result<Descriptor> {
    let what = path.display().to_string();
    match contents_of(path)? {
        Contents::Flat => store_flat(store, path),
        Contents::Oci(blobs) => {
            let image = oci::open(blobs_again(&blobs), &what, tag)?;
            for layer in image.manifest.layers() {
                copy_blob(store, &blobs, layer, &what)?;
            }
            copy_blob(store, &blobs, image.manifest.config(), &what)?;
            copy_blob(store, &blobs, &image.digest, &what)?;
            validate_config(
                store,
                image.manifest.config(),
                image.manifest.layers().len(),
                &what,
            )?;
            let mut manifest = image.digest.clone();
            manifest.set_annotations(None);
            Ok(manifest)
        }
        Contents::Saved(images) => {
            let chosen = layers::choose_saved(images, &what, tag)?;
            let mut loaded = load_saved(store, path, vec![chosen])?;
            Ok(loaded.remove(0).manifest)
        }
    }
}

/// `save`: the images `entries` (with their names) as one archive in
/// `out`, an OCI layout and a docker save archive at once.
pub fn save(store: &Store, entries: &[store::Entry], out: impl Write) -> Result<u64> {
    let mut tar = tar::Builder::new(out);
    let mut written: HashSet<String> = HashSet::new();
    let mut index_manifests = Vec::new();
    let mut docker_manifest = Vec::new();
    let io = |e: std::io::Error| Error::io("writing", "the archive", e);
    for entry in entries {
        let image = store.read(entry)?;
        let blob = |d: &Descriptor| format!("blobs/sha256/{}", d.digest().digest());
        let mut blobs = vec![entry.manifest.clone(), image.manifest.config().clone()];
        blobs.extend(image.manifest.layers().iter().cloned());
        for descriptor in &blobs {
            let hex = descriptor.digest().digest();
            if !written.insert(hex.to_string()) {
                continue;
            }
            // Read as run reads it: no symlink, no FIFO, and checked
            // against its digest and size as it is copied.
            let what = format!("blob {hex} of image {}", store::shown(entry));
            let reader = store.blobs().blob(descriptor, &what)?;
            append(&mut tar, &blob(descriptor), descriptor.size(), reader).map_err(|e| {
                if oci::checked_failure(&e) {
                    Error::Invalid(format!(
                        "{}: the store is damaged",
                        printable(&e.to_string())
                    ))
                } else {
                    io(e)
                }
            })?;
        }
        let mut listed = Descriptor::new(
            MediaType::ImageManifest,
            entry.manifest.size(),
            entry.manifest.digest().clone(),
        );
        let mut tags = Vec::new();
        if let Some(reference) = &entry.reference {
            listed.set_annotations(Some(HashMap::from([
                (
                    "io.containerd.image.name".to_string(),
                    reference.to_string(),
                ),
                (store::REF_NAME.to_string(), reference.tag.clone()),
            ])));
            tags.push(reference.to_string());
        }
        index_manifests.push(listed);
        docker_manifest.push(serde_json::json!({
            "Config": blob(image.manifest.config()),
            "RepoTags": tags,
            "Layers": image.manifest.layers().iter().map(blob).collect::<Vec<_>>(),
        }));
    }
    let index = oci_spec::image::ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(index_manifests)
        .build()
        .map_err(|e| Error::Internal(format!("building the index: {e}")))?;
    let files: [(&str, Vec<u8>); 3] = [
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        (
            "index.json",
            // Through a Value, whose maps are sorted: the same images give
            // the same bytes (oci-spec keeps annotations in a HashMap).
            serde_json::to_vec(&serde_json::to_value(&index).expect("an index serialises"))
                .expect("a JSON value serialises"),
        ),
        (
            "manifest.json",
            serde_json::to_vec(&docker_manifest).expect("a manifest serialises"),
        ),
    ];
    for (name, bytes) in files {
        append(&mut tar, name, bytes.len() as u64, &bytes[..]).map_err(io)?;
    }
    tar.into_inner()
        .and_then(|mut out| out.flush())
        .map_err(io)?;
    Ok(written.len() as u64)
}

/// One member: a regular file, mode 0644, owned by root, dated 1970, as
/// the blobs' contents (not their files') are what the archive carries.
fn append(
    tar: &mut tar::Builder<impl Write>,
    name: &str,
    size: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, name, data)
}

/// Write `save`'s archive to `dest`, through a partial file linked into
/// place whole (never over an existing file).
pub fn save_to(store: &Store, entries: &[store::Entry], dest: &Path) -> Result<u64> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Error::Conflict(format!(
            "{} already exists: give another file, or remove it",
            dest.display()
        )));
    }
    let partial = dest.with_file_name(format!(
        ".{}.partial.{}",
        dest.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .map_err(|e| Error::io("creating", &partial, e))
        .and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            let n = save(store, entries, &mut out)?;
            let file = out
                .into_inner()
                .map_err(|e| Error::io("writing", &partial, e.into_error()))?;
            file.sync_all()
                .map_err(|e| Error::io("writing", &partial, e))?;
            fs::hard_link(&partial, dest).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::Conflict(format!(
                    "{} already exists: give another file, or remove it",
                    dest.display()
                )),
                _ => Error::io("writing", dest, e),
            })?;
            Ok(n)
        });
    let _ = fs::remove_file(&partial);
    result
}
