//! The Python packages tests need, for the tests of every crate: this file is the root
//! package's, and each crate's `tests/common/mod.rs` includes it with `#[path]`.
//!
//! A test that needs a package calls [`need`] first: without the package it fails (never
//! skips), naming the pip command. `scripts/test.sh` installs every package at these versions.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;

/// A Python package: what `python3 -c "import ..."` imports, and how to install it.
pub struct Package {
    pub import: &'static str,
    pub pip: &'static str,
}

/// The Python bridge's toy-text adapters.
pub const GYMNASIUM: Package = Package {
    import: "gymnasium",
    pip: "pip install gymnasium==1.2.0",
};

/// The TextWorld adapter.
pub const TEXTWORLD: Package = Package {
    import: "textworld",
    pip: "pip install textworld==1.6.2",
};

/// The Python methods of the tests and the shipped example (numpy only).
pub const NUMPY: Package = Package {
    import: "numpy",
    pip: "pip install numpy",
};

/// The stand-alone reader of the published summary layout.
pub const SCIPY: Package = Package {
    import: "scipy, numpy",
    pip: "pip install scipy==1.17.1 numpy",
};

/// Fails the calling test unless Python 3 imports `package`, with a message saying how to
/// install it. Each package is looked for once a test process.
pub fn need(package: &Package) {
    static FOUND: Mutex<BTreeSet<&str>> = Mutex::new(BTreeSet::new());
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    if found.contains(package.import) {
        return;
    }
    let out = Command::new("python3")
        .args(["-c", &format!("import {}", package.import)])
        .output()
        .unwrap_or_else(|e| panic!("this test needs python3 ({e}): apt-get install python3"));
    assert!(
        out.status.success(),
        "this test needs Python's {}: {} (scripts/test.sh installs it)\n{}",
        package.import,
        package.pip,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    found.insert(package.import);
}
