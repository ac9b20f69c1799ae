//! The Rust side of qval's Python bridge (`python/qval_bridge`): long-lived Python worker
//! processes that speak one JSON object per line over stdin/stdout.
//!
//! Python environments (`qval_envs::python`) and Python methods (`qval_methods::python`)
//! both run on it. A [`Pool`] holds a fixed number of [`Worker`]s, each serving one request
//! at a time; random draws a worker asks for are served from qval's generator ([`Draws`]);
//! a worker that exits, hangs past its time limit (it is killed) or breaks the protocol is
//! replaced and the request retried once with the same draws, and a second failure gives
//! [`PyError::Worker`] with both reasons (and the worker's last stderr lines). An exception
//! the Python code raises comes back as [`PyError::Python`] with its traceback; a missing
//! package as [`PyError::MissingPackage`] naming the pip command. Workers are killed and
//! reaped when they drop.
//!
//! ```no_run
//! use qval_python::{Draws, Hold, Launch, Pool};
//! use std::time::Duration;
//!
//! let launch = Launch {
//!     python: "python3".into(),
//!     module: "qval_bridge.worker".into(),
//!     flag: "--adapter".into(),
//!     adapter: "qval_bridge.adapters.gym_toytext:TaxiAdapter".into(),
//!     bridge_dir: qval_python::default_bridge_dir(),
//!     path: vec![],
//!     args: serde_json::json!({}),
//!     timeout: Duration::from_secs(30),
//! };
//! let (pool, hello) = Pool::start(launch, 2).unwrap();
//! let tasks = pool
//!     .run::<_, qval_python::PyError>(&|_| serde_json::json!({"op": "tasks"}), &mut Draws::new(None), &mut |v, _| {
//!         Ok((v, Hold::Keep))
//!     })
//!     .unwrap();
//! println!("{} serves {tasks}", hello["name"]);
//! ```
#![deny(missing_docs)]

use std::path::{Path, PathBuf};

mod error;
mod worker;
pub use error::PyError;
pub use worker::{Draw, Draws, Failure, Finish, Hold, Launch, Pool, Worker, python_path};

/// The folder holding the `qval_bridge` package: `$QVAL_BRIDGE_DIR`, else this checkout's
/// `python/` folder.
pub fn default_bridge_dir() -> PathBuf {
    std::env::var_os("QVAL_BRIDGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../python")))
}

/// The Python interpreter: `$QVAL_PYTHON`, else `python3`.
pub fn default_python() -> PathBuf {
    std::env::var_os("QVAL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// Checks what a [`Launch`] needs before any worker starts: a `module:Class` or
/// `path.py:Class` spec (the file existing), a folder holding `qval_bridge`, and an
/// interpreter that runs and is Python 3.9 or newer. The error names the setting (`adapter`,
/// `bridge_dir`, `python`), its value and what is wrong.
pub fn check_launch(spec: &str, bridge_dir: &Path, python: &Path) -> Result<(), (&'static str, String, String)> {
    let spec_form = "give `module:Class` or `path/to/file.py:Class`";
    match spec.rsplit_once(':') {
        Some((module, class)) if !module.is_empty() && !class.is_empty() => {
            if module.ends_with(".py") && !Path::new(module).is_file() {
                return Err(("adapter", spec.to_string(), format!("no such file `{module}`")));
            }
        }
        _ => return Err(("adapter", spec.to_string(), spec_form.to_string())),
    }
    if !bridge_dir.join("qval_bridge").join("__init__.py").is_file() {
        return Err((
            "bridge_dir",
            bridge_dir.display().to_string(),
            "a folder holding the qval_bridge package".into(),
        ));
    }
    let found = std::process::Command::new(python)
        .arg("-c")
        .arg("import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    match found {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(("python", python.display().to_string(), "Python 3.9 or newer".into())),
        Err(e) => Err(("python", python.display().to_string(), format!("cannot run it: {e}"))),
    }
}
