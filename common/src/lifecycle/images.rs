//! The image verbs (ch5 onwards): `images`, `load`, `save`, `tag`, `rmi`,
//! in Docker's words, over the image store (common/src/image/store.rs).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::dataroot::DataRoot;
use crate::error::{notice, printable, Error, Result};
use crate::image::store::{self, Store};
use crate::image::{transfer, Reference};
use crate::narrate;

use super::commit::parse_rfc3339;

/// `images`: the store's images (REPOSITORY, TAG, IMAGE ID, CREATED, SIZE,
/// as Docker lists them), then the tarballs dropped into images/.
pub fn images(root: &DataRoot) -> Result<ExitCode> {
    let store = Store::open(root)?;
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut entries = store.entries()?;
    // Named images by name, then the unnamed ones.
    entries.sort_by(|a, b| {
        (a.reference.is_none(), &a.reference).cmp(&(b.reference.is_none(), &b.reference))
    });
    for entry in &entries {
        let (repository, tag) = match &entry.reference {
            Some(r) => (r.name.clone(), r.tag.clone()),
            None => ("<none>".into(), "<none>".into()),
        };
        // One damaged image is said, and the others still listed.
        let image = match store.read(entry) {
            Ok(image) => image,
            Err(error) => {
                notice(format!("{error}: remove it with rmi"));
                rows.push([repository, tag, "(damaged)".into(), "-".into(), "-".into()]);
                continue;
            }
        };
        let size: u64 = image.manifest.layers().iter().map(|l| l.size()).sum();
        let created = image
            .config
            .created()
            .as_deref()
            .and_then(parse_rfc3339)
            .map_or_else(|| "-".to_string(), crate::container::age);
        rows.push([
            repository,
            tag,
            image.id[..12].to_string(),
            created,
            human_size(size),
        ]);
    }
    let dir = root.dir("images")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io("listing", &dir, e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for path in files {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let Some(name) = file
            .strip_suffix(".tar.gz")
            .or_else(|| file.strip_suffix(".tar"))
        else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        let created = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        rows.push([
            printable(name),
            "(file)".into(),
            "-".into(),
            crate::container::age(created),
            human_size(meta.len()),
        ]);
    }
    println!(
        "{:<24}  {:<10}  {:<12}  {:<16}  SIZE",
        "REPOSITORY", "TAG", "IMAGE ID", "CREATED"
    );
    for [repository, tag, id, created, size] in rows {
        println!("{repository:<24}  {tag:<10}  {id:<12}  {created:<16}  {size}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `load -i FILE`: every image of the archive into the store, named as
/// the archive names it.
pub fn load(root: &DataRoot, input: &Path) -> Result<ExitCode> {
    let store = Store::locked(root)?;
    let loaded = transfer::load(&store, input)?;
    for image in &loaded {
        for name in &image.unusable {
            notice(format!(
                "the archive names an image {name}, which is not NAME:TAG: it is loaded \
                 by ID; name it with tag ID NAME:TAG"
            ));
        }
        if image.names.is_empty() {
            let stored = store.read(&store::Entry {
                reference: None,
                manifest: image.manifest.clone(),
            })?;
            println!("Loaded image ID: sha256:{}", stored.id);
        }
        for name in &image.names {
            println!("Loaded image: {name}");
        }
    }
    narrate!(5, "loaded {} images from {}", loaded.len(), input.display());
    Ok(ExitCode::SUCCESS)
}

/// The store's image `spec` names, or a clear error. A tarball in
/// images/ (the chapters 2 to 4 way, busybox included) is stored first,
/// named NAME:latest.
fn existing(root: &DataRoot, store: &Store, spec: &str) -> Result<store::Entry> {
    if let Some(entry) = store.find(spec)? {
        return Ok(entry);
    }
    let missing = || {
        Error::Invalid(format!(
            "no such image: {}: see images for the names there are",
            printable(&format!("{spec:?}"))
        ))
    };
    let Ok(reference) = Reference::parse(spec) else {
        return Err(missing());
    };
    match crate::image::find(root, spec) {
        Ok(crate::image::Image {
            source: crate::image::Source::Tarball(path),
            ..
        }) if path.starts_with(root.path()) => {
            let manifest = transfer::store_flat(store, &path)?;
            store.tag(&reference, &manifest)?;
            narrate!(5, "stored {} as image {reference}", path.display());
            Ok(store::Entry {
                reference: Some(reference),
                manifest,
            })
        }
        _ => Err(missing()),
    }
}

/// `save IMAGE... -o FILE`.
pub fn save(root: &DataRoot, specs: &[String], output: &Path) -> Result<ExitCode> {
    let store = Store::locked(root)?;
    let entries = specs
        .iter()
        .map(|spec| existing(root, &store, spec))
        .collect::<Result<Vec<_>>>()?;
    let blobs = transfer::save_to(&store, &entries, output)?;
    narrate!(
        5,
        "saved {} images ({blobs} blobs) into {}",
        entries.len(),
        output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `tag SOURCE TARGET`.
pub fn tag(root: &DataRoot, source: &str, target: &str) -> Result<ExitCode> {
    let reference = Reference::parse(target)?;
    let store = Store::locked(root)?;
    let entry = existing(root, &store, source)?;
    store.tag(&reference, &entry.manifest)?;
    Ok(ExitCode::SUCCESS)
}

/// `rmi [-f] IMAGE...`: untag; an image left without a name, and used by
/// no container, is deleted with what only it needed.
pub fn rmi(root: &DataRoot, specs: &[String], force: bool) -> Result<ExitCode> {
    let store = Store::locked(root)?;
    // What the containers use: their images, and their layer directories.
    let mut in_use: HashSet<String> = HashSet::new();
    let mut used_layers: HashSet<String> = HashSet::new();
    for state in crate::container::list(root)?
        .iter()
        .filter_map(|c| c.state().ok())
    {
        if let Some(digest) = &state.manifest {
            in_use.insert(digest.strip_prefix("sha256:").unwrap_or(digest).to_string());
        }
        used_layers.extend(
            state
                .layers
                .iter()
                .filter_map(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned()),
        );
    }
    for spec in specs {
        let entry = existing(root, &store, spec)?;
        // By ID, the image goes with every name it has, as in Docker: with
        // several names, only under -f.
        let by_name = Reference::parse(spec).is_ok_and(|r| entry.reference.as_ref() == Some(&r));
        let mut all = vec![entry.clone()];
        if !by_name {
            let id = store.read(&entry)?.id;
            all = store
                .entries()?
                .into_iter()
                .filter(|e| store.read(e).is_ok_and(|image| image.id == id))
                .collect();
            let names: Vec<String> = all
                .iter()
                .filter_map(|e| e.reference.as_ref().map(|r| r.to_string()))
                .collect();
            if names.len() > 1 && !force {
                return Err(Error::Conflict(format!(
                    "image {} has several names ({}): remove them by name, or all at once with rmi -f",
                    printable(spec),
                    names.join(", ")
                )));
            }
        }
        for entry in all {
            rmi_one(&store, &entry, &in_use, &used_layers, force)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Remove one entry, saying what went.
fn rmi_one(
    store: &Store,
    entry: &store::Entry,
    in_use: &HashSet<String>,
    used_layers: &HashSet<String>,
    force: bool,
) -> Result<()> {
    {
        let removed = store.remove(entry, in_use, used_layers, force)?;
        for name in removed.untagged {
            println!("Untagged: {name}");
        }
        for id in removed.deleted {
            println!("Deleted: sha256:{id}");
        }
        if removed.layers > 0 {
            narrate!(5, "removed {} unpacked layers", removed.layers);
        }
    }
    Ok(())
}

/// `512 B`, `1.5 KiB`, `3.2 MiB`: a unit is left once its number would
/// round to 1024.
fn human_size(bytes: u64) -> String {
    let kib = bytes as f64 / 1024.0;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if kib < 1023.95 {
        format!("{kib:.1} KiB")
    } else {
        format!("{:.1} MiB", kib / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_change_unit_before_they_would_read_1024() {
        for (bytes, shown) in [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (1_048_524, "1023.9 KiB"),
            (1_048_575, "1.0 MiB"),
            (1_048_576, "1.0 MiB"),
            (5 * 1_048_576 + 1_048_576 / 2, "5.5 MiB"),
        ] {
            assert_eq!(human_size(bytes), shown, "{bytes}");
        }
    }
}
