//! The script verbs (RFC 5804 §2.3-§2.12): HAVESPACE, PUTSCRIPT, LISTSCRIPTS, SETACTIVE,
//! GETSCRIPT, DELETESCRIPT, RENAMESCRIPT, CHECKSCRIPT. Names are checked here, scripts are
//! compiled with delivery's compiler and limits, quotas are decided under the directory
//! lock; the file work is [`super::dir`]'s, in a blocking thread.

use std::path::Path;

use super::dir::{check_name, DirError, Entry, ScriptDir};
use super::parse::Arg;
use super::reply::{Code, Response};
use super::session::Session;

/// Why a write was refused or failed.
enum PutError {
    Quota(Code, String),
    Dir(DirError),
}

impl From<DirError> for PutError {
    fn from(e: DirError) -> Self {
        PutError::Dir(e)
    }
}

/// Runs a directory operation in a blocking thread.
async fn blocking<T: Send + 'static>(
    dir: &ScriptDir,
    f: impl FnOnce(&ScriptDir) -> T + Send + 'static,
) -> Option<T> {
    let dir = dir.clone();
    tokio::task::spawn_blocking(move || f(&dir)).await.ok()
}

/// The response to a directory error; I/O details go to the log only.
fn dir_error(e: DirError, user: &str) -> Response {
    match e {
        DirError::Nonexistent => {
            Response::no_code(Code::Nonexistent, "There is no script by that name")
        }
        DirError::AlreadyExists => {
            Response::no_code(Code::AlreadyExists, "A script by that name already exists")
        }
        DirError::Active => Response::no_code(Code::Active, "The active script cannot be deleted"),
        DirError::ActiveNotLink => {
            tracing::warn!(%user, "managesieve: the active-script path is a regular file, not a symlink");
            Response::no("The active script is managed by the administrator")
        }
        DirError::Io(e) => {
            tracing::error!(%user, error = %e, "managesieve: script directory operation failed");
            Response::no_code(Code::TryLater, "Internal error; try later")
        }
    }
}

fn lost() -> Response {
    Response::no_code(Code::TryLater, "Internal error; try later")
}

/// The quotas a write must fit: count and total size after it (`size`, replacing a
/// script of the same name if there is one).
fn fits(
    entries: &[Entry],
    name: &str,
    size: u64,
    max_scripts: usize,
    max_total: u64,
) -> Result<(), PutError> {
    let existing = entries.iter().find(|e| e.name == name);
    let count = entries.len() + usize::from(existing.is_none());
    if count > max_scripts {
        return Err(PutError::Quota(
            Code::QuotaMaxScripts,
            format!("At most {max_scripts} scripts"),
        ));
    }
    let total: u64 =
        entries.iter().map(|e| e.size).sum::<u64>() - existing.map_or(0, |e| e.size) + size;
    if total > max_total {
        return Err(PutError::Quota(
            Code::QuotaMaxSize,
            format!("All scripts together may use at most {max_total} bytes"),
        ));
    }
    Ok(())
}

impl Session {
    fn name_arg<'a>(&self, arg: Option<&'a Arg>) -> Result<&'a str, Response> {
        let raw = arg
            .and_then(Arg::string)
            .ok_or_else(|| Response::no("A script name (a string) is expected"))?;
        check_name(raw).map_err(|e| Response::no(&format!("Bad script name: {e}")))
    }

    /// The login's directory; callers run only after AUTHENTICATE.
    fn dir(&self) -> Option<(ScriptDir, String)> {
        self.login.as_ref().map(|l| (l.dir.clone(), l.user.clone()))
    }

    /// Compiles as delivery would; the compiler's message with its line on failure.
    fn compile(&self, name: &str, content: &[u8]) -> Result<(), Response> {
        let services = self.services();
        crate::filter::tools::check_bytes(
            Path::new(name),
            content,
            &services.config.sieve.scripts,
            &services.config.mailbox.namespace_prefix,
        )
        .map_err(|problem| Response::no(&problem.to_string()))
    }

    pub(super) async fn havespace(&mut self, args: &[Arg]) -> Response {
        let name = match self.name_arg(args.first()) {
            Ok(name) => name.to_string(),
            Err(r) => return r,
        };
        let Some(size) = args
            .get(1)
            .and_then(Arg::number)
            .filter(|_| args.len() == 2)
        else {
            return Response::no("HAVESPACE takes a name and a number");
        };
        let config = self.services().config.managesieve.clone();
        if size > config.max_script_size {
            return Response::no_code(
                Code::QuotaMaxSize,
                &format!(
                    "Script too large (at most {} bytes)",
                    config.max_script_size
                ),
            );
        }
        let Some((dir, user)) = self.dir() else {
            return lost();
        };
        match blocking(&dir, |d| d.list()).await {
            Some(Ok(entries)) => {
                match fits(
                    &entries,
                    &name,
                    size,
                    config.max_scripts,
                    config.max_total_size,
                ) {
                    Ok(()) => Response::ok("Putscript would succeed"),
                    Err(PutError::Quota(code, text)) => Response::no_code(code, &text),
                    Err(PutError::Dir(e)) => dir_error(e, &user),
                }
            }
            Some(Err(e)) => dir_error(e, &user),
            None => lost(),
        }
    }

    pub(super) async fn putscript(&mut self, args: &[Arg]) -> Response {
        if args.len() != 2 {
            return Response::no("PUTSCRIPT takes a name and a script");
        }
        let name = match self.name_arg(args.first()) {
            Ok(name) => name.to_string(),
            Err(r) => return r,
        };
        let Some(content) = args[1].string() else {
            return Response::no("The script must be a string or literal");
        };
        let config = self.services().config.managesieve.clone();
        if content.len() as u64 > config.max_script_size {
            return Response::no_code(Code::QuotaMaxSize, "Script too large");
        }
        if let Err(r) = self.compile(&name, content) {
            return r;
        }
        let Some((dir, user)) = self.dir() else {
            return lost();
        };
        let content = content.to_vec();
        let size = content.len() as u64;
        let put_name = name.clone();
        let done = blocking(&dir, move |d| {
            d.put(&put_name, &content, |entries| {
                fits(
                    entries,
                    &put_name,
                    size,
                    config.max_scripts,
                    config.max_total_size,
                )
            })
        })
        .await;
        match done {
            Some(Ok(())) => {
                tracing::info!(%user, script = %name, size, "managesieve: script stored");
                Response::ok("Putscript completed")
            }
            Some(Err(PutError::Quota(code, text))) => Response::no_code(code, &text),
            Some(Err(PutError::Dir(e))) => dir_error(e, &user),
            None => lost(),
        }
    }

    pub(super) async fn checkscript(&mut self, args: &[Arg]) -> Response {
        let [content] = args else {
            return Response::no("CHECKSCRIPT takes a script");
        };
        let Some(content) = content.string() else {
            return Response::no("The script must be a string or literal");
        };
        match self.compile("script", content) {
            Ok(()) => Response::ok("Script is valid"),
            Err(r) => r,
        }
    }

    pub(super) async fn listscripts(&mut self, args: &[Arg]) -> Response {
        if !args.is_empty() {
            return Response::no("LISTSCRIPTS takes no arguments");
        }
        let Some((dir, user)) = self.dir() else {
            return lost();
        };
        match blocking(&dir, |d| d.list()).await {
            Some(Ok(entries)) => {
                for entry in entries {
                    super::reply::string(entry.name.as_bytes(), &mut self.out);
                    if entry.active {
                        self.out.extend_from_slice(b" ACTIVE");
                    }
                    self.out.extend_from_slice(b"\r\n");
                }
                Response::ok("Listscripts completed")
            }
            Some(Err(e)) => dir_error(e, &user),
            None => lost(),
        }
    }

    pub(super) async fn setactive(&mut self, args: &[Arg]) -> Response {
        let [arg] = args else {
            return Response::no("SETACTIVE takes a name");
        };
        // RFC 5804 §2.8: the empty name deactivates.
        let name = match arg.string() {
            Some(b"") => None,
            _ => match self.name_arg(Some(arg)) {
                Ok(name) => Some(name.to_string()),
                Err(r) => return r,
            },
        };
        let Some((dir, user)) = self.dir() else {
            return lost();
        };
        let target = name.clone();
        match blocking(&dir, move |d| d.set_active(target.as_deref())).await {
            Some(Ok(())) => {
                tracing::info!(%user, script = name.as_deref().unwrap_or(""), "managesieve: active script set");
                Response::ok("Setactive completed")
            }
            Some(Err(e)) => dir_error(e, &user),
            None => lost(),
        }
    }

    pub(super) async fn getscript(&mut self, args: &[Arg]) -> Response {
        if args.len() != 1 {
            return Response::no("GETSCRIPT takes a name");
        }
        let name = match self.name_arg(args.first()) {
            Ok(name) => name.to_string(),
            Err(r) => return r,
        };
        let Some((dir, user)) = self.dir() else {
            return lost();
        };
        let max = self.services().config.sieve.scripts.max_script_size;
        match blocking(&dir, move |d| d.get(&name, max)).await {
            Some(Ok(bytes)) => {
                self.out
                    .extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                self.out.extend_from_slice(&bytes);
                self.out.extend_from_slice(b"\r\n");
                Response::ok("Getscript completed")
            }
            Some(Err(e)) => dir_error(e, &user),
            None => lost(),
        }
    }

    pub(super) async fn deletescript(&mut self, args: &[Arg]) -> Response {
        if args.len() != 1 {
            return Response::no("DELETESCRIPT takes a name");
        }
        let name = match self.name_arg(args.first()) {
            Ok(name) => name.to_string(),
            Err(r) => return r,
        };
        let Some((dir, user)) = self.dir() else {
            return lost();
        };
        let target = name.clone();
        match blocking(&dir, move |d| d.delete(&target)).await {
            Some(Ok(())) => {
                tracing::info!(%user, script = %name, "managesieve: script deleted");
                Response::ok("Deletescript completed")
            }
            Some(Err(e)) => dir_error(e, &user),
            None => lost(),
        }
    }

    pub(super) async fn renamescript(&mut self, args: &[Arg]) -> Response {
        if args.len() != 2 {
            return Response::no("RENAMESCRIPT takes two names");
        }
        let (old, new) = match (self.name_arg(args.first()), self.name_arg(args.get(1))) {
            (Ok(old), Ok(new)) => (old.to_string(), new.to_string()),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        let Some((dir, user)) = self.dir() else {
            return lost();
        };
        match blocking(&dir, move |d| d.rename(&old, &new)).await {
            Some(Ok(())) => Response::ok("Renamescript completed"),
            Some(Err(e)) => dir_error(e, &user),
            None => lost(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas() {
        let e = |name: &str, size| Entry {
            name: name.into(),
            size,
            active: false,
        };
        let entries = [e("a", 10), e("b", 20)];
        assert!(fits(&entries, "a", 15, 2, 35).is_ok());
        assert!(matches!(
            fits(&entries, "c", 1, 2, 100),
            Err(PutError::Quota(Code::QuotaMaxScripts, _))
        ));
        assert!(matches!(
            fits(&entries, "a", 16, 2, 35),
            Err(PutError::Quota(Code::QuotaMaxSize, _))
        ));
    }
}
