//! `commit` and `export`: a container's files as a new image, or as one
//! tarball (ch5 onwards).
//!
//! `commit` does what Docker does: the container's overlay upper directory
//! (everything it changed) becomes one new layer on top of its image's
//! layers, and the new image's config is its image's, with the container's
//! command, variables, working directory and user. The base layers are
//! shared, not copied: running the new image unpacks only the new layer.
//! `commit --flatten` makes one layer of the whole tree instead, and
//! `export` writes that tree as a root filesystem tarball (what `docker
//! import` takes).

use std::fs::OpenOptions;
use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;

use oci_spec::image::{Config as ExecConfig, Descriptor, HistoryBuilder, MediaType};

use crate::container::{Container, State};
use crate::error::{notice, Error, Result};
use crate::image::store::{self, Store};
use crate::image::{self, export, transfer, Reference, Source};
use crate::{dataroot::DataRoot, mount, namespace, narrate, overlay};

pub fn commit(root: &DataRoot, name: &str, target: &str, flatten: bool) -> Result<ExitCode> {
    let container = Container::existing(root, name)?;
    let reference = Reference::parse(target)?;
    let _lock = container.lock()?;
    let state = container.state()?;
    let store = Store::locked(root)?;
    // 1. The image the container started from, in the store: the new
    //    layer goes on top of its layers.
    let base = base_image(root, &store, &state).map_err(|error| match error {
        // A full disk while the base is stored is the new image's failure.
        Error::Io { source, .. } => Error::Io {
            what: "writing the new image, while storing its base image",
            path: std::path::PathBuf::from(&state.image),
            source,
        },
        other => other,
    })?;
    let flatten = flatten || base.is_none();
    // 2. A mount namespace of our own (and, without root, a user namespace
    //    mapped like the container's, so that owners read as it sees them).
    namespace::enter_private_mount_ns()?;
    // 3. The new layer: the upper directory, whiteouts translated; or,
    //    flattened, the whole tree through a read-only overlay view.
    let (layer, written) = if flatten {
        flat_layer(root, &store, &state, &container)?
    } else {
        let upper = container.layout().upper;
        store.create(|out| export::write_layer(&upper, out, state.rootless))?
    };
    let kind = if flatten {
        MediaType::ImageLayerZstd
    } else {
        MediaType::ImageLayer
    };
    let layer_descriptor = store::descriptor(kind, &layer.hex, layer.size);
    // 4. The config: the base's, with the container's command and settings,
    //    the new layer's uncompressed digest and a line of history.
    let base_stored = match &base {
        Some(entry) => Some(store.read(entry)?),
        None => None,
    };
    let mut config = match &base_stored {
        Some(stored) => stored.config.clone(),
        None => transfer::bare_config(Vec::new())?,
    };
    apply_container(&mut config, &state)?;
    let diff_id = format!("sha256:{}", layer.diff_id);
    if flatten {
        config.rootfs_mut().set_diff_ids(vec![diff_id]);
        config.set_history(None);
    } else {
        config.rootfs_mut().diff_ids_mut().push(diff_id);
    }
    let created = rfc3339(crate::container::now());
    let history = HistoryBuilder::default()
        .created(created.clone())
        .created_by(format!("stepbox commit {name}"))
        .build()
        .map_err(|e| Error::Internal(format!("building history: {e}")))?;
    config
        .history_mut()
        .get_or_insert_with(Vec::new)
        .push(history);
    config.set_created(Some(created));
    let config_descriptor = store.put_json(&config, MediaType::ImageConfig)?;
    // 5. The manifest: the base's layers, then the new one; and the name.
    let mut layers: Vec<Descriptor> = match (&base_stored, flatten) {
        (Some(stored), false) => stored.manifest.layers().clone(),
        _ => Vec::new(),
    };
    let below = layers.len();
    layers.push(layer_descriptor);
    let manifest = transfer::build_manifest(config_descriptor.clone(), layers)?;
    let manifest = store.put_json(&manifest, MediaType::ImageManifest)?;
    store.tag(&reference, &manifest)?;
    let id = config_descriptor.digest().digest().to_string();
    narrate!(
        5,
        "committed {name} as {reference}: a layer of {} entries ({} bytes), on {below} layer{} of its image",
        written.entries,
        layer.size,
        if below == 1 { "" } else { "s" }
    );
    for skipped in &written.skipped {
        notice(format!(
            "not committed (a device node or socket): /{}",
            crate::error::printable(&skipped.display().to_string())
        ));
    }
    println!("sha256:{id}");
    Ok(ExitCode::SUCCESS)
}

/// The container's image as an image of the store: the one it ran, or
/// (when it ran an archive by path) that archive, stored now. None when
/// there is no image to build on: a root filesystem directory, or an image
/// whose layers are no longer the container's (its file changed since).
fn base_image(root: &DataRoot, store: &Store, state: &State) -> Result<Option<store::Entry>> {
    let unnamed = |manifest: Descriptor| store::Entry {
        reference: None,
        manifest,
    };
    let entry = match &state.manifest {
        Some(digest) => {
            let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
            if !store::is_hex_digest(hex) || !store.blob_path(hex).is_file() {
                return Ok(None);
            }
            let size = std::fs::metadata(store.blob_path(hex)).map_or(0, |m| m.len());
            unnamed(store::descriptor(MediaType::ImageManifest, hex, size))
        }
        None => {
            let Ok(image) = image::find(root, &state.image) else {
                notice("the container's image is gone: committed flattened, as one layer");
                return Ok(None);
            };
            match &image.source {
                Source::Stored(entry) => (**entry).clone(),
                Source::Directory(dir) if image::oci::Blobs::in_dir(dir).is_none() => {
                    notice(format!(
                        "the container's image {} is a directory, not layers: committed \
                         flattened, as one layer",
                        dir.display()
                    ));
                    return Ok(None);
                }
                Source::Directory(path) | Source::Tarball(path) => {
                    unnamed(transfer::store_archive(store, path, image.tag.as_deref())?)
                }
            }
        }
    };
    // The layers it lists must be the ones the container runs on.
    let stored = store.read(&entry)?;
    let digests: Vec<&str> = stored
        .manifest
        .layers()
        .iter()
        .map(|l| l.digest().digest())
        .collect();
    let running: Vec<String> = state
        .layers
        .iter()
        .map(|dir| {
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    if !running.iter().all(|r| digests.contains(&r.as_str())) {
        notice("the container's image changed since it started: committed flattened, as one layer");
        return Ok(None);
    }
    Ok(Some(entry))
}

/// A layer of the whole tree, gzip-compressed, from a read-only overlay
/// view of the container's files: its volumes, /proc and /dev are mounts
/// in *its* namespace, so they are not in this view (docs/ch5-commit.md#commit).
fn flat_layer(
    root: &DataRoot,
    store: &Store,
    state: &State,
    container: &Container,
) -> Result<(store::Created, export::Exported)> {
    let (_scratch, view) = mount_view(root, state, container)?;
    let written = store.create_zstd(|out| export::write_tree(&view, out));
    let unmounted = mount::unmount_detach(5, &view);
    let written = written?;
    unmounted?;
    Ok(written)
}

/// The container's whole tree, its `upper/` over its image's layers, as a
/// read-only overlay on a scratch directory (in the caller's private mount
/// namespace). The scratch directory goes when the first value is dropped.
fn mount_view(
    root: &DataRoot,
    state: &State,
    container: &Container,
) -> Result<(crate::dataroot::Scratch, std::path::PathBuf)> {
    let scratch = root.scratch("view")?;
    let view = scratch.path().join("view");
    std::fs::create_dir(&view).map_err(|e| Error::io("creating", &view, e))?;
    overlay::mount_readonly_view(
        &state.layers,
        &container.layout().upper,
        &view,
        state.rootless,
    )?;
    Ok((scratch, view))
}

/// The container's command, variables, working directory and user in the
/// image config, as `docker commit` records them.
fn apply_container(config: &mut oci_spec::image::ImageConfiguration, state: &State) -> Result<()> {
    let mut exec: ExecConfig = config.config().clone().unwrap_or_default();
    let entrypoint = exec.entrypoint().clone().unwrap_or_default();
    if !entrypoint.is_empty() && state.command.starts_with(&entrypoint) {
        exec.set_cmd(Some(state.command[entrypoint.len()..].to_vec()));
    } else {
        exec.set_entrypoint(None);
        exec.set_cmd(Some(state.command.clone()));
    }
    let mut env: Vec<(String, String)> = Vec::new();
    for (name, value) in &state.env {
        env.retain(|(n, _)| n != name);
        env.push((name.clone(), value.clone()));
    }
    if !env.is_empty() {
        exec.set_env(Some(env.iter().map(|(n, v)| format!("{n}={v}")).collect()));
    }
    if let Some(dir) = &state.workdir {
        exec.set_working_dir(Some(dir.clone()));
    }
    if let Some(user) = &state.user {
        exec.set_user(Some(user.clone()));
    }
    config.set_config(Some(exec));
    Ok(())
}

/// `export`: the container's whole tree as a root filesystem tarball in
/// `dest` (gzip-compressed if its name ends in .gz or .tgz).
pub fn export(root: &DataRoot, name: &str, dest: &Path) -> Result<ExitCode> {
    let container = Container::existing(root, name)?;
    if dest.exists() {
        return Err(Error::Conflict(format!(
            "{} already exists: give another file, or remove it",
            dest.display()
        )));
    }
    let _lock = container.lock()?;
    let state = container.state()?;
    namespace::enter_private_mount_ns()?;
    let (_scratch, view) = mount_view(root, &state, &container)?;
    let partial = dest.with_file_name(format!(
        ".{}.partial.{}",
        dest.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let gzip = [".gz", ".tgz"]
        .iter()
        .any(|ext| dest.to_string_lossy().ends_with(ext));
    let written = write_file(&view, &partial, gzip);
    let unmounted = mount::unmount_detach(5, &view);
    let linked = written.and_then(|written| {
        unmounted?;
        std::fs::hard_link(&partial, dest).map_err(|e| Error::io("writing", dest, e))?;
        Ok(written)
    });
    let _ = std::fs::remove_file(&partial);
    let written = linked?;
    narrate!(
        5,
        "exported {name}: {} entries, {} bytes of file data, into {}",
        written.entries,
        written.bytes,
        dest.display()
    );
    println!("{}", dest.display());
    Ok(ExitCode::SUCCESS)
}

/// The tree at `view` as a tarball in `path` (created, never overwritten).
fn write_file(view: &Path, path: &Path, gzip: bool) -> Result<export::Exported> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Error::io("creating", path, e))?;
    let file = if gzip {
        let mut out = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let written = export::write_tree(view, &mut out)?;
        let file = out.finish().map_err(|e| Error::io("writing", path, e))?;
        file.sync_all().map_err(|e| Error::io("writing", path, e))?;
        return Ok(written);
    } else {
        file
    };
    let mut out = BufWriter::new(file);
    let written = export::write_tree(view, &mut out)?;
    out.into_inner()
        .map_err(|e| Error::io("writing", path, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io("writing", path, e))?;
    Ok(written)
}

/// Seconds since the epoch as RFC 3339 (`2026-12-01T14:05:09Z`), as image
/// configs date things.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// An RFC 3339 date (`2026-12-01T14:05:09.123+01:00`) as seconds since the
/// epoch, or None.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let number = |s: &str| s.parse::<i64>().ok();
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut ymd = date.splitn(3, '-');
    let (year, month, day) = (
        number(ymd.next()?)?,
        number(ymd.next()?)?,
        number(ymd.next()?)?,
    );
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(at) => time.split_at(at),
        None => (time, ""),
    };
    let clock = clock.split('.').next()?;
    let mut hms = clock.splitn(3, ':');
    let (h, m, s) = (
        number(hms.next()?)?,
        number(hms.next()?)?,
        number(hms.next()?)?,
    );
    let offset = match offset.as_bytes().first() {
        Some(sign @ (b'+' | b'-')) => {
            let (oh, om) = offset[1..].split_once(':')?;
            let secs = number(oh)? * 3600 + number(om)? * 60;
            if *sign == b'+' {
                secs
            } else {
                -secs
            }
        }
        _ => 0,
    };
    // Days from civil (the inverse of the above).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + s - offset;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_and_read_as_rfc_3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_144_709), "2026-12-01T17:05:09Z");
        for secs in [0, 951_782_400, 1_796_144_709, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
        assert_eq!(
            parse_rfc3339("2026-12-01T18:05:09.5+01:00"),
            Some(1_796_144_709)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
