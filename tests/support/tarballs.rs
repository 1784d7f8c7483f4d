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

/// `archive` after a global PAX header named as GNU tar names them
/// (`tar --format=posix --pax-option=comment=…`): an absolute path, which
/// is no file's.
pub fn with_global_header(archive: &[u8]) -> Vec<u8> {
    let record = b"17 comment=hello\n";
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XGlobalHeader);
    header.set_mode(0o644);
    raw(
        &mut header.as_ustar_mut().unwrap().name,
        "/tmp/GlobalHead.1.1",
    );
    header.set_size(record.len() as u64);
    header.set_cksum();
    let mut bytes = header.as_bytes().to_vec();
    bytes.extend_from_slice(record);
    bytes.resize(1024, 0);
    bytes.extend_from_slice(archive);
    bytes
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

/// One raw 512-byte ustar header: `name` and the size field exactly as given
/// (a size that is not a number makes readers fail, naming the entry), with
/// a correct checksum.
pub fn raw_header(name: &[u8], kind: u8, size_field: &[u8]) -> Vec<u8> {
    let mut header = vec![0u8; 512];
    header[..name.len()].copy_from_slice(name);
    header[100..108].copy_from_slice(b"0000644\0");
    header[108..116].copy_from_slice(b"0000000\0");
    header[116..124].copy_from_slice(b"0000000\0");
    header[124..124 + size_field.len()].copy_from_slice(size_field);
    header[136..148].copy_from_slice(b"15000000000\0");
    header[156] = kind;
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].fill(b' ');
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    header
}

/// A tarball whose one entry has the (GNU long) name `name`, any length and
/// any bytes, with `data`.
pub fn long_named(name: &[u8], data: &[u8]) -> Vec<u8> {
    let pad = |bytes: &mut Vec<u8>| bytes.resize(bytes.len().div_ceil(512) * 512, 0);
    let mut out = raw_header(
        b"././@LongLink",
        b'L',
        format!("{:011o}\0", name.len() + 1).as_bytes(),
    );
    out.extend_from_slice(name);
    out.push(0);
    pad(&mut out);
    out.extend(raw_header(
        b"placeholder",
        b'0',
        format!("{:011o}\0", data.len()).as_bytes(),
    ));
    out.extend_from_slice(data);
    pad(&mut out);
    out.resize(out.len() + 1024, 0);
    out
}

/// `archive` with the mode of its entry `name` changed to `mode`.
pub fn with_mode(archive: &[u8], name: &str, mode: u32) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        if entry.path_bytes().as_ref() == name.as_bytes() {
            header.set_mode(mode);
            header.set_cksum();
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        out.append(&header, &data[..]).unwrap();
    }
    out.into_inner().unwrap()
}

/// The tarball `base` (e.g. busybox) with one more file, `name` = `text`.
pub fn plus_file(base: &Path, name: &str, text: &str) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let bytes = fs::read(base).unwrap();
    let mut reader = tar::Archive::new(&bytes[..]);
    for entry in reader.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
        out.append(&header, &data[..]).unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_size(text.len() as u64);
    out.append_data(&mut header, name, text.as_bytes()).unwrap();
    out.into_inner().unwrap()
}
