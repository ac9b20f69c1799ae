//! `qval rollouts`: list or prune a rollout store.

use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::{CliError, Result, out};
use qval_core::rollout::RolloutStore;

/// `qval rollouts`.
#[derive(Args, Debug)]
pub struct RolloutsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: RolloutsAction,
}

/// `qval rollouts list|prune`.
#[derive(Subcommand, Debug)]
pub enum RolloutsAction {
    /// What the store holds, by environment and policy: entries, rollouts, bytes.
    List {
        /// The store's folder.
        dir: PathBuf,
    },
    /// Delete entries: those of a policy or environment, older than some days, or
    /// unreadable ones (at least one filter must be given).
    Prune {
        /// The store's folder.
        dir: PathBuf,
        /// Only entries whose policy fingerprint contains this text.
        #[arg(long)]
        policy: Option<String>,
        /// Only entries of this environment.
        #[arg(long)]
        env: Option<String>,
        /// Only entries last written more than this many days ago.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// Only files that do not parse (torn writes).
        #[arg(long)]
        unreadable: bool,
        /// Every entry.
        #[arg(long)]
        all: bool,
    },
}

/// Runs `qval rollouts`.
///
/// # Errors
/// A folder that cannot be read, a file that cannot be removed, prune without a filter.
pub fn execute(a: &RolloutsArgs) -> Result<()> {
    match &a.action {
        RolloutsAction::List { dir } => {
            let entries = RolloutStore::new(dir).list()?;
            let mut groups: BTreeMap<(String, String), (usize, usize, u64)> = BTreeMap::new();
            for e in &entries {
                let key = match &e.produced {
                    Some(p) => (p.env.clone(), p.policy.clone()),
                    None => ("(unreadable)".into(), String::new()),
                };
                let g = groups.entry(key).or_default();
                *g = (g.0 + 1, g.1 + e.rollouts, g.2 + e.bytes);
            }
            out::line(&format!("{}: {} entries", dir.display(), entries.len()));
            for ((env, policy), (n, r, b)) in groups {
                out::line(&format!("  {env}  {policy}: {n} entries, {r} rollouts, {b} bytes"));
            }
            Ok(())
        }
        RolloutsAction::Prune {
            dir,
            policy,
            env,
            older_than,
            unreadable,
            all,
        } => {
            if !all && policy.is_none() && env.is_none() && older_than.is_none() && !unreadable {
                return Err(CliError::Usage(
                    "qval rollouts prune: give --all, --policy, --env, --older-than or --unreadable".into(),
                ));
            }
            let cutoff = older_than.map(|d| SystemTime::now() - Duration::from_secs(d * 86_400));
            let mut removed = 0;
            for e in RolloutStore::new(dir).list()? {
                let matches = *all
                    || match &e.produced {
                        None => *unreadable,
                        Some(p) => {
                            !unreadable
                                && policy.as_ref().is_none_or(|x| p.policy.contains(x.as_str()))
                                && env.as_ref().is_none_or(|x| &p.env == x)
                                && cutoff.is_none_or(|c| e.modified.is_some_and(|m| m < c))
                        }
                    };
                if matches {
                    std::fs::remove_file(&e.path).map_err(|err| qval_core::CoreError::io("removing", &e.path, err))?;
                    removed += 1;
                }
            }
            out::line(&format!("{}: removed {removed} entries", dir.display()));
            Ok(())
        }
    }
}
