//! OCI image layouts made byte by byte for the tests: blobs named by their
//! sha256, a manifest, an index (tests/oci.rs, tests/config.rs).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{chown_to_sandbox_user, Sandbox};

pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

pub fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// One layer as a layout lists it: its bytes as stored and its media type.
/// A layer's bytes as its tar stream (gzip and zstd undone; any other
/// media type as it is).
pub fn uncompressed(layer: &Layer) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    if layer.media_type.ends_with("+gzip") {
        flate2::read::GzDecoder::new(&layer.bytes[..])
            .read_to_end(&mut out)
            .unwrap();
    } else if layer.media_type.ends_with("+zstd") {
        out = zstd::decode_all(&layer.bytes[..]).unwrap();
    } else {
        out = layer.bytes.clone();
    }
    out
}

pub struct Layer {
    pub bytes: Vec<u8>,
    pub media_type: String,
}

/// Image layouts made by hand: blobs by digest, a manifest, an index.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    /// Store `bytes` as a blob; its descriptor's digest.
    pub fn blob(&self, bytes: &[u8]) -> String {
        let hex = sha256(bytes);
        fs::write(self.dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        hex
    }

    /// A manifest of `layers` (and a minimal config), as a descriptor JSON.
    pub fn manifest(&self, layers: &[Layer], ref_name: &str) -> serde_json::Value {
        self.manifest_with(layers, ref_name, &serde_json::json!({}))
    }

    /// The same with `config` as the config blob's `config` object.
    pub fn manifest_with(
        &self,
        layers: &[Layer],
        ref_name: &str,
        config: &serde_json::Value,
    ) -> serde_json::Value {
        // Each layer's uncompressed digest, as an image config names it.
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|layer| format!("sha256:{}", sha256(&uncompressed(layer))))
            .collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": config,
        }))
        .unwrap();
        self.image(&config, layers, ref_name)
    }

    /// A manifest of `layers` with the config blob `config` as it is
    /// (whatever it holds), as a descriptor JSON named `ref_name`.
    pub fn image(&self, config: &[u8], layers: &[Layer], ref_name: &str) -> serde_json::Value {
        let config_hex = self.blob(config);
        let layers: Vec<serde_json::Value> = layers
            .iter()
            .map(|layer| {
                serde_json::json!({
                    "mediaType": layer.media_type,
                    "digest": format!("sha256:{}", self.blob(&layer.bytes)),
                    "size": layer.bytes.len(),
                })
            })
            .collect();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{config_hex}"),
                "size": config.len(),
            },
            "layers": layers,
        }))
        .unwrap();
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{}", self.blob(&manifest)),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": ref_name},
        })
    }

    pub fn index(&self, manifests: &[serde_json::Value]) {
        let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }

    /// The blob file of layer `n` (0 = bottom) of the index's first manifest.
    pub fn layer_blob(&self, n: usize) -> PathBuf {
        let read = |path: PathBuf| -> serde_json::Value {
            serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
        };
        let index = read(self.dir.join("index.json"));
        let hex = |d: &serde_json::Value| d["digest"].as_str().unwrap()[7..].to_string();
        let manifest = read(
            self.dir
                .join("blobs/sha256")
                .join(hex(&index["manifests"][0])),
        );
        self.dir
            .join("blobs/sha256")
            .join(hex(&manifest["layers"][n]))
    }
}

/// The layout directory `dir` as an oci-archive (a plain tar of it).
pub fn archive(sandbox: &Sandbox, dir: &Path) -> PathBuf {
    let path = dir.with_extension("tar");
    let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
    builder.append_dir_all(".", dir).unwrap();
    builder.finish().unwrap();
    chown_to_sandbox_user(sandbox, &path);
    path
}

/// Give `dir` and everything in it to the sandbox's user (symlinks
/// themselves, never what they point to).
pub fn chown_tree(sandbox: &Sandbox, dir: &Path) {
    let Some(id) = super::sandbox_uid(sandbox) else {
        return;
    };
    std::os::unix::fs::lchown(dir, Some(id), Some(id)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            chown_tree(sandbox, &entry.path());
        } else {
            std::os::unix::fs::lchown(entry.path(), Some(id), Some(id)).unwrap();
        }
    }
}
