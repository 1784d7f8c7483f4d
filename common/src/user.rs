//! The user a container's command runs as: the image's `User`, or `-u`
//! (ch3 onwards).
//!
//! `uid`, `uid:gid`, `name` or `name:group`. A name means the image's own
//! /etc/passwd and /etc/group, so it is looked up in the child after the
//! switch into the new root, where `/etc` is the image's (never the
//! host's). Then, last before exec: `setgroups` (the user's groups in the
//! image's /etc/group), `setgid`, `setuid`, in that order, because once the
//! uid is not 0 the others are no longer allowed.

use std::io::Read;

use nix::unistd::{Gid, Uid};

use crate::error::{Error, Result};
use crate::narrate;

/// The largest /etc/passwd or /etc/group read from an image.
const FILE_LIMIT: u64 = 1 << 20;

/// Who the command runs as, resolved in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary one included).
    pub groups: Vec<u32>,
    /// The home directory /etc/passwd gives, or `/` for a bare uid.
    pub home: String,
}

/// One `name:x:uid:gid:...:home:shell` line of a passwd file.
struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            name: fields[0],
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: fields[5],
        })
    })
}

/// One `name:x:gid:member,member` line of a group file.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 {
            return None;
        }
        let members = fields[3].split(',').filter(|m| !m.is_empty()).collect();
        Some((fields[0], fields[2].parse().ok()?, members))
    })
}

/// Resolve `spec` against the texts of the image's /etc/passwd and
/// /etc/group (empty when it has none).
pub fn resolve_in(spec: &str, passwd: &str, groups_file: &str) -> Result<User> {
    let refuse = |why: &str| {
        Error::Invalid(format!(
            "user {}: {why}; give uid, uid:gid, name or name:group",
            crate::error::quote(spec)
        ))
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    if user_part.is_empty() || group_part == Some("") {
        return Err(refuse("a part is empty"));
    }
    let entry =
        passwd_entries(passwd).find(|e| e.name == user_part || e.uid.to_string() == user_part);
    let (uid, mut gid, home, name) = match (&entry, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name)),
        // A bare uid need not be in /etc/passwd (as in Docker): group 0, home /.
        (None, Ok(uid)) => (uid, 0, "/".to_string(), None),
        (None, Err(_)) => return Err(refuse("no such user in the image's /etc/passwd")),
    };
    if let Some(group) = group_part {
        gid = match group_entries(groups_file)
            .find(|(n, g, _)| *n == group || g.to_string() == group)
        {
            Some((_, g, _)) => g,
            None => group
                .parse()
                .map_err(|_| refuse("no such group in the image's /etc/group"))?,
        };
    }
    let mut groups = vec![gid];
    if let Some(name) = name {
        for (_, g, members) in group_entries(groups_file) {
            if members.contains(&name) && !groups.contains(&g) {
                groups.push(g);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// Resolve `spec` in the container: after the switch, /etc is the image's.
pub fn resolve(spec: &str) -> Result<User> {
    let passwd = read_etc("/etc/passwd")?;
    let group = read_etc("/etc/group")?;
    narrate!(
        3,
        "getpwnam({})   /* in the image's /etc/passwd and /etc/group */",
        crate::error::quote(spec)
    );
    resolve_in(spec, &passwd, &group)
}

/// The image's `path`, or nothing if it has none; at most 1 MiB, text.
fn read_etc(path: &str) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: a FIFO in the image's place of /etc/passwd must not hang us.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(Error::io("reading the image's", path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "the image's {path} is not a regular file: fix or rebuild the image"
        )));
    }
    if meta.len() > FILE_LIMIT {
        return Err(Error::Invalid(format!(
            "the image's {path} is larger than 1 MiB: fix or rebuild the image"
        )));
    }
    let mut bytes = Vec::new();
    file.take(FILE_LIMIT)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading the image's", path, e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl User {
    /// Become this user, last before exec: groups, then gid, then uid. In a
    /// user namespace that maps only uid 0, no other user exists: that is
    /// said, with the fix.
    pub fn switch(&self) -> Result<()> {
        let groups: Vec<String> = self.groups.iter().map(u32::to_string).collect();
        narrate!(
            3,
            "setgroups({}, [{}]); setgid({}); setuid({})",
            self.groups.len(),
            groups.join(", "),
            self.gid,
            self.uid
        );
        let unmapped = |errno: nix::errno::Errno, call: String| {
            let error = Error::sys(call, errno);
            match errno {
                nix::errno::Errno::EINVAL if maps_one_id() => error.hint(
                    "this user namespace maps only uid and gid 0 (you): run as root, or give \
                     yourself a subordinate id range (sudo usermod --add-subuids 100000-165535 \
                     --add-subgids 100000-165535 $USER; apt install uidmap)",
                ),
                _ => error,
            }
        };
        // setgroups is denied in a user namespace that maps one id: the only
        // group there is already ours.
        let denied =
            std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|text| text.trim() == "deny");
        if !denied {
            let gids: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
            nix::unistd::setgroups(&gids).map_err(|errno| {
                unmapped(
                    errno,
                    format!("setgroups({}, [{}])", gids.len(), groups.join(", ")),
                )
            })?;
        }
        nix::unistd::setgid(Gid::from_raw(self.gid))
            .map_err(|errno| unmapped(errno, format!("setgid({})", self.gid)))?;
        nix::unistd::setuid(Uid::from_raw(self.uid))
            .map_err(|errno| unmapped(errno, format!("setuid({})", self.uid)))?;
        Ok(())
    }
}

/// Whether this process's user namespace maps a single uid (a rootless
/// container without a subordinate range): then no other user exists.
fn maps_one_id() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let lines: Vec<&str> = map.lines().collect();
        lines.len() == 1 && lines[0].split_whitespace().nth(2) == Some("1")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str =
        "root:x:0:0:root:/root:/bin/sh\napp:x:1001:1002:App:/home/app:/bin/sh\nbroken line\n";
    const GROUP: &str = "root:x:0:\napp:x:1002:\nwheel:x:10:app,other\nstaff:x:50:\n";

    fn user(uid: u32, gid: u32, groups: &[u32], home: &str) -> User {
        User {
            uid,
            gid,
            groups: groups.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn a_user_is_a_uid_or_a_name_with_an_optional_group() {
        let r = |spec| resolve_in(spec, PASSWD, GROUP).unwrap();
        assert_eq!(r("app"), user(1001, 1002, &[1002, 10], "/home/app"));
        assert_eq!(r("1001"), user(1001, 1002, &[1002, 10], "/home/app"));
        assert_eq!(r("app:staff"), user(1001, 50, &[50, 10], "/home/app"));
        assert_eq!(r("app:77"), user(1001, 77, &[77, 10], "/home/app"));
        assert_eq!(r("4242"), user(4242, 0, &[0], "/"));
        assert_eq!(r("4242:staff"), user(4242, 50, &[50], "/"));
        assert_eq!(resolve_in("0", "", "").unwrap(), user(0, 0, &[0], "/"));
    }

    #[test]
    fn an_unknown_name_or_group_is_refused_saying_where_it_was_looked_for() {
        for (spec, why) in [
            ("nobody-here", "no such user in the image's /etc/passwd"),
            ("app:nogroup", "no such group in the image's /etc/group"),
            (":50", "a part is empty"),
            ("app:", "a part is empty"),
        ] {
            let error = resolve_in(spec, PASSWD, GROUP).unwrap_err().to_string();
            assert!(error.contains(why), "{spec}: {error}");
            assert!(
                error.ends_with("give uid, uid:gid, name or name:group"),
                "{error}"
            );
        }
    }
}
