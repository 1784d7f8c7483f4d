//! An image's config: how to run it (ch3 onwards).
//!
//! Beside its layers, an OCI or docker-save image carries a config (a JSON
//! blob). Its `config` object says how a container of it runs; stepbox
//! honours what Docker does:
//!
//! * `Env`: variables, after stepbox's defaults and before `-e`;
//! * `Entrypoint` and `Cmd`: the command is the entrypoint followed by the
//!   command line's arguments, or by `Cmd` when there are none
//!   (`--entrypoint` replaces the entrypoint and drops `Cmd`);
//! * `WorkingDir`: the command's working directory, made if missing;
//! * `User`: `uid`, `uid:gid`, `name` or `name:group`, a name looked up in
//!   the image's own /etc/passwd and /etc/group.
//!
//! A flat root filesystem has no config: `/bin/sh` as root in `/`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{printable, Error, Result};

/// The part of an image's config stepbox honours. Empty for a flat root
/// filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    #[serde(rename = "Env", default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(rename = "Entrypoint", default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
}

impl Config {
    /// The config in an image's config blob `bytes` (OCI's or Docker's
    /// JSON: its `config` object; absent fields and nulls are empty).
    /// Strings holding a NUL byte, and `Env` entries that are not
    /// `NAME=VALUE`, are refused naming the image.
    pub fn from_blob(bytes: &[u8], what: &str) -> Result<Config> {
        let invalid = |why: String| Error::Invalid(format!("{what}'s config: {why}"));
        let top: Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON ({e})")))?;
        let Some(config) = top.get("config").filter(|c| !c.is_null()) else {
            return Ok(Config::default());
        };
        let strings = |field: &str| -> Result<Vec<String>> {
            match config.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| match item.as_str() {
                        Some(text) if !text.contains('\0') => Ok(text.to_string()),
                        _ => Err(invalid(format!(
                            "{field} holds {}, not a string",
                            printable(&item.to_string())
                        ))),
                    })
                    .collect(),
                Some(other) => Err(invalid(format!(
                    "{field} is {}, not a list of strings",
                    printable(&other.to_string())
                ))),
            }
        };
        let string = |field: &str| -> Result<String> {
            match config.get(field) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(text)) if !text.contains('\0') => Ok(text.clone()),
                Some(other) => Err(invalid(format!(
                    "{field} is {}, not a string",
                    printable(&other.to_string())
                ))),
            }
        };
        let parsed = Config {
            env: strings("Env")?,
            entrypoint: strings("Entrypoint")?,
            cmd: strings("Cmd")?,
            working_dir: string("WorkingDir")?,
            user: string("User")?,
        };
        if let Some(bad) = parsed
            .env
            .iter()
            .find(|var| var.split_once('=').is_none_or(|(name, _)| name.is_empty()))
        {
            return Err(invalid(format!(
                "Env holds {}, which is not NAME=VALUE",
                printable(bad)
            )));
        }
        if !parsed.working_dir.is_empty() && !parsed.working_dir.starts_with('/') {
            return Err(invalid(format!(
                "WorkingDir {} is not an absolute path",
                printable(&parsed.working_dir)
            )));
        }
        Ok(parsed)
    }

    /// The image's variables as (name, value) pairs, in order.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|var| var.split_once('='))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// The command to run, by Docker's rules: `entrypoint` (the
    /// `--entrypoint` flag, or the image's) then `args` (the command line's,
    /// or the image's `Cmd` when there are none and no `--entrypoint` was
    /// given); `/bin/sh` if that leaves nothing.
    pub fn argv(&self, entrypoint: Option<&str>, args: &[String]) -> Vec<String> {
        let mut argv: Vec<String> = match entrypoint {
            Some("") => Vec::new(),
            Some(flag) => vec![flag.to_string()],
            None => self.entrypoint.clone(),
        };
        if !args.is_empty() {
            argv.extend(args.iter().cloned());
        } else if entrypoint.is_none() {
            argv.extend(self.cmd.iter().cloned());
        }
        if argv.is_empty() {
            argv.push("/bin/sh".to_string());
        }
        argv
    }

    /// The working directory, if the image sets one.
    pub fn working_dir(&self) -> Option<String> {
        (!self.working_dir.is_empty()).then(|| self.working_dir.clone())
    }

    /// The user, if the image sets one.
    pub fn user(&self) -> Option<String> {
        (!self.user.is_empty()).then(|| self.user.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn config(entrypoint: &[&str], cmd: &[&str]) -> Config {
        Config {
            entrypoint: strings(entrypoint),
            cmd: strings(cmd),
            ..Config::default()
        }
    }

    #[test]
    fn the_command_is_entrypoint_then_arguments_or_cmd_as_docker_combines_them() {
        let both = config(&["/entry", "-x"], &["cmd", "arg"]);
        assert_eq!(
            both.argv(None, &[]),
            strings(&["/entry", "-x", "cmd", "arg"])
        );
        assert_eq!(
            both.argv(None, &strings(&["mine"])),
            strings(&["/entry", "-x", "mine"])
        );
        assert_eq!(both.argv(Some("/other"), &[]), strings(&["/other"]));
        assert_eq!(
            both.argv(Some("/other"), &strings(&["a"])),
            strings(&["/other", "a"])
        );
        assert_eq!(
            both.argv(Some(""), &strings(&["ls", "/"])),
            strings(&["ls", "/"])
        );
        let cmd_only = config(&[], &["/bin/echo", "hi"]);
        assert_eq!(cmd_only.argv(None, &[]), strings(&["/bin/echo", "hi"]));
        assert_eq!(cmd_only.argv(None, &strings(&["ls"])), strings(&["ls"]));
        assert_eq!(Config::default().argv(None, &[]), strings(&["/bin/sh"]));
        assert_eq!(Config::default().argv(Some(""), &[]), strings(&["/bin/sh"]));
    }

    #[test]
    fn a_config_blob_gives_env_entrypoint_cmd_workdir_and_user() {
        let blob = br#"{"architecture":"amd64","config":{"Env":["PATH=/x:/bin","FOO=a=b"],
            "Entrypoint":null,"Cmd":["sh"],"WorkingDir":"/data","User":"1000:50"}}"#;
        let config = Config::from_blob(blob, "image t").unwrap();
        assert_eq!(
            config.env_pairs(),
            vec![
                ("PATH".into(), "/x:/bin".into()),
                ("FOO".into(), "a=b".into())
            ]
        );
        assert_eq!(config.entrypoint, Vec::<String>::new());
        assert_eq!(config.cmd, strings(&["sh"]));
        assert_eq!(config.working_dir(), Some("/data".into()));
        assert_eq!(config.user(), Some("1000:50".into()));
        assert_eq!(
            Config::from_blob(br#"{"rootfs":{}}"#, "t").unwrap(),
            Config::default()
        );
        assert_eq!(
            Config::from_blob(br#"{"config":null}"#, "t").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn a_bad_config_is_refused_naming_the_field() {
        for (blob, why) in [
            (
                &br#"{"config":{"Env":["NOEQUALS"]}}"#[..],
                "Env holds NOEQUALS, which is not NAME=VALUE",
            ),
            (
                br#"{"config":{"Env":["=x"]}}"#,
                "Env holds =x, which is not NAME=VALUE",
            ),
            (
                br#"{"config":{"Cmd":"sh"}}"#,
                "Cmd is \"sh\", not a list of strings",
            ),
            (br#"{"config":{"Cmd":[1]}}"#, "Cmd holds 1, not a string"),
            (
                br#"{"config":{"WorkingDir":"data"}}"#,
                "WorkingDir data is not an absolute path",
            ),
            (br#"{"config":{"User":7}}"#, "User is 7, not a string"),
            (br#"{"config":{"Cmd":["a\u0000b"]}}"#, "Cmd holds"),
            (b"not json", "not JSON"),
        ] {
            let error = Config::from_blob(blob, "image t").unwrap_err().to_string();
            assert!(error.starts_with("image t's config: "), "{error}");
            assert!(error.contains(why), "{why}: {error}");
        }
    }
}
