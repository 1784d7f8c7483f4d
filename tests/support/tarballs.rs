//! Tarballs built by the tests: layers, `docker save` images and hostile
//! archives. Entries are written with raw headers, so a test can put into an
//! archive exactly what an attacker would (`..`, absolute paths, devices),
//! which the `tar` crate's own path setters refuse to write.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// One entry of a test tarball.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
    CharDevice(&'a str, u32, u32),
}

/// A tar archive holding `entries`, in order.
pub fn tarball(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        let (name, data): (&str, &[u8]) = match entry {
            Entry::Dir(name) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                (name, b"")
            }
            Entry::File(name, text) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                (name, text.as_bytes())
            }
            Entry::Symlink(name, target) | Entry::HardLink(name, target) => {
                let kind = match entry {
                    Entry::Symlink(..) => tar::EntryType::Symlink,
                    _ => tar::EntryType::Link,
                };
                header.set_entry_type(kind);
                header.set_mode(0o777);
                raw(&mut header.as_gnu_mut().unwrap().linkname, target);
                (name, b"")
            }
            Entry::CharDevice(name, major, minor) => {
                header.set_entry_type(tar::EntryType::Char);
                header.set_mode(0o666);
                header.set_device_major(*major).unwrap();
                header.set_device_minor(*minor).unwrap();
                (name, b"")
            }
        };
        raw(&mut header.as_gnu_mut().unwrap().name, name);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Write `text` into a fixed-size header field as is, with no checks.
fn raw(field: &mut [u8], text: &str) {
    assert!(
        text.len() < field.len(),
        "{text} is too long for a test header"
    );
    field.fill(0);
    field[..text.len()].copy_from_slice(text.as_bytes());
}

/// A `docker save` style image: manifest.json plus one tarball per layer,
/// bottom layer first.
pub fn docker_save(layers: &[Vec<u8>]) -> Vec<u8> {
    let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut names = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("layer{i}/layer.tar");
        members.insert(name.clone(), layer.clone());
        names.push(format!("{name:?}"));
    }
    let manifest = format!(
        "[{{\"Config\":\"config.json\",\"RepoTags\":[\"test:latest\"],\"Layers\":[{}]}}]",
        names.join(",")
    );
    members.insert("config.json".into(), b"{}".to_vec());
    members.insert("manifest.json".into(), manifest.into_bytes());
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(bytes.len() as u64);
        builder.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Every path below `dir` with its type, mode, size and (for files) content,
/// never following symlinks: two equal snapshots mean an unchanged tree.
pub fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(dir).unwrap().display().to_string();
        let what = if meta.is_dir() {
            for entry in fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
            "dir".to_string()
        } else if meta.file_type().is_symlink() {
            format!("-> {}", fs::read_link(&path).unwrap().display())
        } else if meta.is_file() {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            fs::read(&path).unwrap().hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        } else {
            format!("special {}", meta.rdev())
        };
        out.insert(rel, format!("{:o} {} {}", meta.mode(), meta.size(), what));
    }
    out
}
