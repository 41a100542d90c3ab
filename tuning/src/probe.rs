//! What `check` learns by trying rather than reading: whether an io_uring ring starts and with
//! which features, the device and file system under the data dir, and whether O_DIRECT and
//! fallocate work there (on a scratch file that is removed at once).

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::check::Probes;

/// Entries of the probe ring: the smallest a kernel accepts is enough to read its features.
const PROBE_RING_ENTRIES: u32 = 4;
/// Bytes the fallocate probe reserves: one 4 KiB block.
const PROBE_FALLOCATE_BYTES: i64 = 4096;

pub(crate) fn gather(data_dir: &Path, try_files: bool) -> Probes {
    let existing = existing_ancestor(data_dir);
    let data_dev = std::fs::metadata(&existing).ok().map(|m| {
        let dev = m.dev();
        (
            u64::from(nix::sys::stat::major(dev) as u32),
            u64::from(nix::sys::stat::minor(dev) as u32),
        )
    });
    let scratch = try_files.then(|| file_probes(&existing)).flatten();
    Probes {
        io_uring: io_uring_features(),
        data_path: existing.to_string_lossy().into_owned(),
        data_dev,
        o_direct: scratch.as_ref().map(|(d, _)| d.clone()),
        fallocate: scratch.map(|(_, f)| f),
        allowed_cpus: allowed_cpus(),
    }
}

/// The data dir may not exist yet: its nearest existing ancestor is where it would be created.
fn existing_ancestor(dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .ancestors()
        .find_map(|a| a.canonicalize().ok())
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn io_uring_features() -> Result<Vec<String>, String> {
    let ring = io_uring::IoUring::new(PROBE_RING_ENTRIES).map_err(|e| e.to_string())?;
    let p = ring.params();
    let features = [
        ("single_mmap", p.is_feature_single_mmap()),
        ("nodrop", p.is_feature_nodrop()),
        ("submit_stable", p.is_feature_submit_stable()),
        ("rw_cur_pos", p.is_feature_rw_cur_pos()),
        ("cur_personality", p.is_feature_cur_personality()),
        ("fast_poll", p.is_feature_fast_poll()),
        ("poll_32bits", p.is_feature_poll_32bits()),
        ("sqpoll_nonfixed", p.is_feature_sqpoll_nonfixed()),
        ("ext_arg", p.is_feature_ext_arg()),
        ("native_workers", p.is_feature_native_workers()),
        ("resource_tagging", p.is_feature_resource_tagging()),
        ("skip_cqe_on_success", p.is_feature_skip_cqe_on_success()),
        ("linked_file", p.is_feature_linked_file()),
    ];
    Ok(features
        .iter()
        .filter(|(_, has)| *has)
        .map(|(name, _)| name.to_string())
        .collect())
}

/// Opens a scratch file with O_DIRECT in `dir`, then fallocates it; removes it either way.
/// `None` when this user may not create files there: nothing can be said then.
fn file_probes(dir: &Path) -> Option<(Result<(), String>, Result<(), String>)> {
    let path = dir.join(format!(".riffle-tune-probe-{}", std::process::id()));
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    let result = match opened {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (
            Err("O_DIRECT refused (EINVAL)".to_string()),
            Err("not tried".to_string()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return None,
        Err(e) => {
            let why = format!("cannot create a file there: {e}");
            (Err(why.clone()), Err(why))
        }
        Ok(file) => {
            let fallocated = nix::fcntl::fallocate(
                &file,
                nix::fcntl::FallocateFlags::empty(),
                0,
                PROBE_FALLOCATE_BYTES,
            );
            (Ok(()), fallocated.map_err(|e| format!("fallocate: {e}")))
        }
    };
    let _ = std::fs::remove_file(&path);
    Some(result)
}

/// The CPUs this process may run on (all of them, counted, if the kernel will not say).
pub(crate) fn allowed_cpus() -> Vec<usize> {
    match core_affinity::get_core_ids() {
        Some(cores) if !cores.is_empty() => cores.into_iter().map(|core| core.id).collect(),
        _ => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}
