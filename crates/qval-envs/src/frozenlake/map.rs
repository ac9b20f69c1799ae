//! FrozenLake maps: parsing, gymnasium's presets, seeded random maps and the exact
//! transition model.

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

use crate::EnvsError;
use qval_core::seed::{rng_for, stable_hash};

/// A tile of the lake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    /// `S`: where the agent starts (frozen, safe).
    Start,
    /// `F`: frozen, safe.
    Frozen,
    /// `H`: a hole; entering it ends the episode with reward 0.
    Hole,
    /// `G`: the goal; entering it ends the episode with reward 1.
    Goal,
}

impl Tile {
    /// The tile's letter.
    pub fn letter(self) -> char {
        match self {
            Tile::Start => 'S',
            Tile::Frozen => 'F',
            Tile::Hole => 'H',
            Tile::Goal => 'G',
        }
    }

    /// Whether entering the tile ends the episode.
    pub fn is_terminal(self) -> bool {
        matches!(self, Tile::Hole | Tile::Goal)
    }
}

/// The four moves, numbered as in gymnasium: 0 left, 1 down, 2 right, 3 up.
pub const MOVES: [&str; 4] = ["left", "down", "right", "up"];

/// A rectangular FrozenLake map. Serialised as its rows (`["SFFF", "FHFH", ...]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Grid {
    rows: usize,
    cols: usize,
    tiles: Vec<Tile>,
    start: usize,
    key: u64,
}

impl TryFrom<Vec<String>> for Grid {
    type Error = EnvsError;
    fn try_from(rows: Vec<String>) -> Result<Self, EnvsError> {
        Grid::parse(&rows)
    }
}

impl From<Grid> for Vec<String> {
    fn from(g: Grid) -> Self {
        g.rows_text()
    }
}

impl Grid {
    /// Parses rows of `S`, `F`, `H`, `G`: rectangular, one `S`, at least one `G`.
    ///
    /// # Errors
    /// [`EnvsError::InvalidMap`] naming the row and column of the problem.
    pub fn parse<S: AsRef<str>>(rows: &[S]) -> Result<Grid, EnvsError> {
        if rows.is_empty() {
            return Err(EnvsError::InvalidMap("no rows".into()));
        }
        let cols = rows[0].as_ref().chars().count();
        if cols == 0 {
            return Err(EnvsError::InvalidMap("empty first row".into()));
        }
        let mut tiles = Vec::with_capacity(rows.len() * cols);
        let mut start = None;
        for (r, row) in rows.iter().enumerate() {
            let row = row.as_ref();
            if row.chars().count() != cols {
                return Err(EnvsError::InvalidMap(format!(
                    "row {r} has {} tiles, row 0 has {cols}",
                    row.chars().count()
                )));
            }
            for (c, ch) in row.chars().enumerate() {
                let tile = match ch {
                    'S' => Tile::Start,
                    'F' => Tile::Frozen,
                    'H' => Tile::Hole,
                    'G' => Tile::Goal,
                    other => {
                        return Err(EnvsError::InvalidMap(format!(
                            "row {r} column {c}: `{other}` is not one of S F H G"
                        )));
                    }
                };
                if tile == Tile::Start {
                    if start.is_some() {
                        return Err(EnvsError::InvalidMap(format!(
                            "row {r} column {c}: a second start tile"
                        )));
                    }
                    start = Some(tiles.len());
                }
                tiles.push(tile);
            }
        }
        let start = start.ok_or_else(|| EnvsError::InvalidMap("no start tile `S`".into()))?;
        if !tiles.contains(&Tile::Goal) {
            return Err(EnvsError::InvalidMap("no goal tile `G`".into()));
        }
        let text: String = rows.iter().map(|r| r.as_ref()).collect::<Vec<_>>().join("/");
        Ok(Grid {
            rows: rows.len(),
            cols,
            tiles,
            start,
            key: stable_hash(&text),
        })
    }

    /// Gymnasium's 4x4 preset.
    pub fn preset_4x4() -> Grid {
        Grid::parse(&["SFFF", "FHFH", "FFFH", "HFFG"]).expect("a valid preset")
    }

    /// Gymnasium's 8x8 preset.
    pub fn preset_8x8() -> Grid {
        Grid::parse(&[
            "SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF", "FFFHFFFG",
        ])
        .expect("a valid preset")
    }

    /// A random `size` x `size` map as gymnasium's `generate_random_map` makes it: each tile
    /// frozen with probability `p`, otherwise a hole, `S` top-left, `G` bottom-right,
    /// redrawn until a path from `S` to `G` exists. Seeded: the same `seed` gives the same map.
    ///
    /// # Errors
    /// [`EnvsError::InvalidParameter`] for a size below 2 or `p` outside (0, 1].
    pub fn random(size: usize, p: f64, seed: u64) -> Result<Grid, EnvsError> {
        if size < 2 {
            return Err(EnvsError::InvalidParameter {
                name: "size",
                value: size.to_string(),
                reason: "at least 2".into(),
            });
        }
        if !(p > 0.0 && p <= 1.0) {
            return Err(EnvsError::InvalidParameter {
                name: "p",
                value: p.to_string(),
                reason: "a probability in (0, 1]".into(),
            });
        }
        let mut rng = rng_for(seed, &[size as u64]);
        loop {
            let rows: Vec<String> = (0..size)
                .map(|r| {
                    (0..size)
                        .map(|c| match (r, c) {
                            (0, 0) => 'S',
                            _ if r == size - 1 && c == size - 1 => 'G',
                            _ => {
                                if rng.random::<f64>() < p {
                                    'F'
                                } else {
                                    'H'
                                }
                            }
                        })
                        .collect()
                })
                .collect();
            let grid = Grid::parse(&rows)?;
            if grid.goal_reachable() {
                return Ok(grid);
            }
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of cells.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Always false: a map has at least one cell.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }

    /// The start cell (row-major index).
    pub fn start(&self) -> usize {
        self.start
    }

    /// The tile at a cell.
    pub fn tile(&self, cell: usize) -> Tile {
        self.tiles[cell]
    }

    /// A stable hash of the map, for caching per-map computations.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The map's rows as text.
    pub fn rows_text(&self) -> Vec<String> {
        self.tiles
            .chunks(self.cols)
            .map(|r| r.iter().map(|t| t.letter()).collect())
            .collect()
    }

    /// The cell reached by moving `dir` (0 left, 1 down, 2 right, 3 up) from `cell`; moving
    /// off the grid keeps the agent in place.
    pub fn move_from(&self, cell: usize, dir: usize) -> usize {
        let (r, c) = (cell / self.cols, cell % self.cols);
        let (r, c) = match dir {
            0 => (r, c.saturating_sub(1)),
            1 => ((r + 1).min(self.rows - 1), c),
            2 => (r, (c + 1).min(self.cols - 1)),
            _ => (r.saturating_sub(1), c),
        };
        r * self.cols + c
    }

    /// The exact transition model: `(probability, next cell)` for moving `dir` from `cell`, as
    /// gymnasium's `P` lists it. On slippery ice the agent goes in the intended direction or
    /// one of the two perpendicular ones, each with probability 1/3, listed in gymnasium's
    /// order (`dir - 1`, `dir`, `dir + 1`) and not merged when two land on the same cell, so
    /// that expected values summed over them are gymnasium's to the last bit.
    pub fn transitions(&self, cell: usize, dir: usize, slippery: bool) -> Vec<(f64, usize)> {
        if !slippery {
            return vec![(1.0, self.move_from(cell, dir))];
        }
        [(dir + 3) % 4, dir, (dir + 1) % 4]
            .into_iter()
            .map(|d| (1.0 / 3.0, self.move_from(cell, d)))
            .collect()
    }

    /// Shortest number of moves from each cell to a goal without entering a hole
    /// (deterministic moves); `None` where no path exists. Goal cells are 0, holes `None`.
    pub fn distances_to_goal(&self) -> Vec<Option<usize>> {
        let mut dist = vec![None; self.len()];
        let mut queue = VecDeque::new();
        for (i, t) in self.tiles.iter().enumerate() {
            if *t == Tile::Goal {
                dist[i] = Some(0);
                queue.push_back(i);
            }
        }
        // Moves are symmetric except at walls, so search backwards over predecessors.
        while let Some(cell) = queue.pop_front() {
            let d = dist[cell].expect("queued cells have distances");
            let preds: Vec<usize> = (0..self.len())
                .filter(|&p| dist[p].is_none() && !self.tiles[p].is_terminal())
                .filter(|&p| (0..4).any(|dir| self.move_from(p, dir) == cell))
                .collect();
            for p in preds {
                dist[p] = Some(d + 1);
                queue.push_back(p);
            }
        }
        dist
    }

    /// Whether a goal can be reached from the start.
    pub fn goal_reachable(&self) -> bool {
        self.distances_to_goal()[self.start].is_some()
    }
}
