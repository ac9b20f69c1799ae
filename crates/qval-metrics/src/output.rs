//! Writing a [`Summary`]'s files: the JSON, the Markdown table and the plots. Kept apart from
//! [`crate::summary`] (the data and its text) and [`crate::plots`] (the drawing, which reads a
//! [`Summary`]) so that neither of those two imports the other.

use std::path::{Path, PathBuf};

use crate::MetricsError;
use crate::plots::write_plots;
use crate::summary::{Summary, to_published_json};

impl Summary {
    /// Writes `<stem>.json` (published layout, 4-space indent), `<stem>.md` and plots
    /// (`<stem>_plots/*.svg` and `.png`) into `dir`; returns the files written and warnings
    /// (plots that could not be drawn, never fatal).
    ///
    /// # Errors
    /// A file cannot be written.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(Vec<PathBuf>, Vec<String>), MetricsError> {
        let mut written = Vec::new();
        let json = to_published_json(self).map_err(|e| MetricsError::Format {
            path: dir.join(stem),
            message: e.to_string(),
        })?;
        let p = dir.join(format!("{stem}.json"));
        qval_core::io::write_atomic(&p, json.as_bytes())?;
        written.push(p);
        let p = dir.join(format!("{stem}.md"));
        qval_core::io::write_atomic(&p, self.markdown().as_bytes())?;
        written.push(p);
        let (plots, warnings) = write_plots(self, &dir.join(format!("{stem}_plots")))?;
        written.extend(plots);
        Ok((written, warnings))
    }
}
