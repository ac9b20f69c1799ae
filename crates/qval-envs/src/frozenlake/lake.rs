//! The FrozenLake environment: its states, actions and steps.

use super::map::{Grid, MOVES, Tile};
use super::render::render_png;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

use crate::EnvsError;
use qval_core::{EnvProfile, EnvSpec, Environment, Image, Observation, QRng, Result, StepOutcome, Task};

/// A FrozenLake action.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FrozenLakeAction {
    /// Move left (0).
    Left,
    /// Move down (1).
    Down,
    /// Move right (2).
    Right,
    /// Move up (3).
    Up,
    /// Text that is not a move: wastes the turn.
    Invalid(String),
}

impl FrozenLakeAction {
    /// The move numbered `i` (0 left, 1 down, 2 right, 3 up; taken modulo 4).
    pub fn from_index(i: usize) -> Self {
        match i % 4 {
            0 => FrozenLakeAction::Left,
            1 => FrozenLakeAction::Down,
            2 => FrozenLakeAction::Right,
            _ => FrozenLakeAction::Up,
        }
    }

    /// The move's number, `None` for an invalid action.
    pub fn index(&self) -> Option<usize> {
        match self {
            FrozenLakeAction::Left => Some(0),
            FrozenLakeAction::Down => Some(1),
            FrozenLakeAction::Right => Some(2),
            FrozenLakeAction::Up => Some(3),
            FrozenLakeAction::Invalid(_) => None,
        }
    }
}

/// A FrozenLake state: the map, the agent's cell and the error of the last turn, if it was
/// wasted. Holds everything the next step depends on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrozenLakeState {
    /// The map.
    pub map: Arc<Grid>,
    /// The agent's cell, row-major.
    pub pos: usize,
    /// Why the last turn was wasted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FrozenLakeState {
    /// The tile under the agent.
    pub fn tile(&self) -> Tile {
        self.map.tile(self.pos)
    }

    /// The agent's (row, column).
    pub fn row_col(&self) -> (usize, usize) {
        (self.pos / self.map.cols(), self.pos % self.map.cols())
    }
}

/// What observations contain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObservationMode {
    /// Text only (default).
    #[default]
    Text,
    /// Text and a PNG rendering.
    TextAndImage,
}

/// The FrozenLake environment. Build with [`FrozenLake::builder`].
#[derive(Clone, Debug)]
pub struct FrozenLake {
    maps: Vec<Arc<Grid>>,
    /// `(task index, map)` per task when the tasks are not one per map.
    task_maps: Option<Vec<(usize, usize)>>,
    slippery: bool,
    mode: ObservationMode,
    image_size: u32,
    spec: EnvSpec,
}

/// The published task description of FrozenLake 8x8 on its random maps, text observations
/// (`frozen_lake_8x8_react_tags.yaml` of the published testbed).
pub const PUBLISHED_TASK: &str = "The agent navigates a frozen lake grid (8x8) from start (S) to goal (G) without falling into holes (H). \
Each trajectory uses a different randomly generated 8x8 map. The agent sees an ASCII grid with its position marked as '@'. \
Actions: left, down, right, up. Moving off the grid keeps the agent in place. \
The episode ends when the agent reaches the goal, falls into a hole, or the step limit is reached.";

/// The published task description with pictures (`frozen_lake_8x8_vision.yaml`).
pub const PUBLISHED_TASK_VISION: &str = "The agent navigates a frozen lake grid (8x8) from start (S) to goal (G) without falling into holes (H). \
Each trajectory uses a different randomly generated 8x8 map. The agent sees both an ASCII grid (agent marked '@') and a rendered image of the same grid. \
Actions: left, down, right, up. Moving off the grid keeps the agent in place. \
The episode ends when the agent reaches the goal, falls into a hole, or the step limit is reached.";

/// The published reward description of FrozenLake.
pub const PUBLISHED_REWARD: &str = "Sparse outcome-based reward: 1.0 for reaching the goal (G), 0.0 otherwise.";

/// The tile legend and action set given to agents and methods.
pub const INSTRUCTION: &str = "Navigate the frozen lake from the start S to the goal G without falling into a hole. \
Tiles: S start (safe), F frozen (safe), H hole (falling in ends the episode), G goal; @ marks your position. \
Actions: left, down, right, up. Moving off the edge leaves you in place.";

impl FrozenLake {
    /// A builder with the published defaults: no maps yet, not slippery, 30 steps, gamma 0.95,
    /// text observations, 512 px images.
    pub fn builder() -> FrozenLakeBuilder {
        FrozenLakeBuilder {
            maps: Vec::new(),
            task_maps: None,
            published: false,
            slippery: false,
            max_steps: 30,
            gamma: 0.95,
            mode: ObservationMode::Text,
            image_size: 512,
            error: None,
        }
    }

    /// Whether the ice is slippery.
    pub fn slippery(&self) -> bool {
        self.slippery
    }

    /// The default discount.
    pub fn gamma(&self) -> f64 {
        self.spec.gamma
    }

    /// The distinct maps. Task `i` plays map `i`, except with
    /// [`FrozenLakeBuilder::published_tasks`], where task `t` plays map `t % 8`.
    pub fn maps(&self) -> &[Arc<Grid>] {
        &self.maps
    }

    /// The state with the agent at `pos` on `map` (for tests and exact values).
    pub fn state_at(&self, map: &Arc<Grid>, pos: usize) -> FrozenLakeState {
        FrozenLakeState {
            map: map.clone(),
            pos,
            error: None,
        }
    }

    /// The text rendering of a state.
    pub fn render_text(state: &FrozenLakeState) -> String {
        let g = &state.map;
        let mut out = String::with_capacity(g.len() * 2 + 64);
        if let Some(e) = &state.error {
            out.push_str("Error: ");
            out.push_str(e);
            out.push('\n');
        }
        for r in 0..g.rows() {
            for c in 0..g.cols() {
                let cell = r * g.cols() + c;
                if c > 0 {
                    out.push(' ');
                }
                out.push(if cell == state.pos { '@' } else { g.tile(cell).letter() });
            }
            if r + 1 < g.rows() {
                out.push('\n');
            }
        }
        out
    }
}

/// The published maps' JSON, as committed.
pub const PUBLISHED_MAPS_JSON: &str = include_str!("../../data/published_frozenlake_maps.json");

#[derive(Deserialize)]
struct PublishedFile {
    maps: Vec<Vec<String>>,
    task_order: Vec<usize>,
}

fn published_file() -> std::result::Result<PublishedFile, EnvsError> {
    serde_json::from_str::<PublishedFile>(PUBLISHED_MAPS_JSON)
        .map_err(|e| EnvsError::InvalidMap(format!("published_frozenlake_maps.json: {e}")))
}

/// The published maps' rows (see [`FrozenLakeBuilder::published_maps`]).
///
/// # Errors
/// [`EnvsError::InvalidMap`] if the committed file is malformed.
pub fn published_map_rows() -> std::result::Result<Vec<Vec<String>>, EnvsError> {
    published_file().map(|f| f.maps)
}

/// The task indices the published FrozenLake dataset's 50 trajectories played, in collection
/// order (Python's `random.Random(42).shuffle(list(range(50)))`); task `t` plays map `t % 8`.
///
/// # Errors
/// [`EnvsError::InvalidMap`] if the committed file is malformed.
pub fn published_task_order() -> std::result::Result<Vec<usize>, EnvsError> {
    published_file().map(|f| f.task_order)
}

/// Builder of [`FrozenLake`].
#[derive(Clone, Debug)]
pub struct FrozenLakeBuilder {
    maps: Vec<Arc<Grid>>,
    task_maps: Option<Vec<(usize, usize)>>,
    published: bool,
    slippery: bool,
    max_steps: usize,
    gamma: f64,
    mode: ObservationMode,
    image_size: u32,
    error: Option<EnvsError>,
}

impl FrozenLakeBuilder {
    /// Adds gymnasium's 4x4 preset map.
    pub fn preset_4x4(mut self) -> Self {
        self.published = false;
        self.maps.push(Arc::new(Grid::preset_4x4()));
        self
    }

    /// Adds gymnasium's 8x8 preset map.
    pub fn preset_8x8(mut self) -> Self {
        self.published = false;
        self.maps.push(Arc::new(Grid::preset_8x8()));
        self
    }

    /// Adds a map given as rows of `S F H G`.
    pub fn map<S: AsRef<str>>(mut self, rows: &[S]) -> Self {
        self.published = false;
        match Grid::parse(rows) {
            Ok(g) => self.maps.push(Arc::new(g)),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Adds `n` random `size` x `size` maps (frozen with probability 0.8), map i seeded by
    /// `(seed, i)` with qval's own generator. These are not the published maps; see
    /// [`FrozenLakeBuilder::published_maps`].
    pub fn random_maps(mut self, n: usize, size: usize, seed: u64) -> Self {
        self.published = false;
        for i in 0..n {
            match Grid::random(size, 0.8, qval_core::seed::derive_seed(seed, &[i as u64])) {
                Ok(g) => self.maps.push(Arc::new(g)),
                Err(e) => self.error = self.error.or(Some(e)),
            }
        }
        self
    }

    /// Adds the 8 published 8x8 maps (map seed 42), committed in
    /// `data/published_frozenlake_maps.json` and regenerated through gymnasium by
    /// `scripts/gen_published_maps.py`: map i is `generate_random_map(8, 0.8, seeds[i])` with
    /// `seeds = numpy.random.RandomState(42).randint(0, 2**31 - 1, 8)`. The package that drew
    /// the published maps is not public; this rule is inferred, and checked against the
    /// published ground truth (`tests/published_maps.rs`).
    ///
    /// Without other maps and on non-slippery ice, the task and reward descriptions methods
    /// are given are the published ones ([`PUBLISHED_TASK`], [`PUBLISHED_TASK_VISION`] with
    /// pictures, [`PUBLISHED_REWARD`]).
    pub fn published_maps(mut self) -> Self {
        let first = self.maps.is_empty();
        match published_map_rows() {
            Ok(maps) => {
                for rows in maps {
                    self = self.map(&rows);
                }
            }
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self.published = first;
        self
    }

    /// The published maps with the published dataset's tasks: 50 tasks in its collection
    /// order ([`published_task_order`]), task `t` on published map `t % 8`. Collecting 50
    /// trajectories then plays, trajectory by trajectory, the maps the published dataset played.
    /// No other maps may be added: [`FrozenLakeBuilder::build`] refuses them.
    pub fn published_tasks(mut self) -> Self {
        self = self.published_maps();
        let n = self.maps.len().max(1);
        match published_task_order() {
            Ok(order) => self.task_maps = Some(order.into_iter().map(|t| (t, t % n)).collect()),
            Err(e) => self.error = self.error.or(Some(e)),
        }
        self
    }

    /// Slippery ice (default false).
    pub fn slippery(mut self, on: bool) -> Self {
        self.slippery = on;
        self
    }

    /// The step budget (default 30).
    pub fn max_steps(mut self, n: usize) -> Self {
        self.max_steps = n;
        self
    }

    /// The default discount (default 0.95).
    pub fn gamma(mut self, g: f64) -> Self {
        self.gamma = g;
        self
    }

    /// Text only or text and image (default text).
    pub fn observation(mut self, mode: ObservationMode) -> Self {
        self.mode = mode;
        self
    }

    /// Image width and height in pixels (default 512).
    pub fn image_size(mut self, px: u32) -> Self {
        self.image_size = px;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    /// The first invalid map, no map at all, other maps next to the published tasks, a zero
    /// step budget, a gamma outside (0, 1], or an image size below 16 pixels.
    pub fn build(self) -> std::result::Result<FrozenLake, EnvsError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let invalid = |name, value: String, reason: &str| EnvsError::InvalidParameter {
            name,
            value,
            reason: reason.into(),
        };
        if self.maps.is_empty() {
            return Err(invalid(
                "maps",
                "none".into(),
                "add at least one map (preset_8x8, map, random_maps, published_maps)",
            ));
        }
        if self.task_maps.is_some() && !self.published {
            return Err(invalid(
                "maps",
                format!("{} maps", self.maps.len()),
                "published_tasks plays the published maps only: remove preset, map and random_maps",
            ));
        }
        if self.max_steps == 0 {
            return Err(invalid("max_steps", "0".into(), "at least 1"));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(invalid("gamma", self.gamma.to_string(), "a discount in (0, 1]"));
        }
        if self.image_size < 16 {
            return Err(invalid("image_size", self.image_size.to_string(), "at least 16 pixels"));
        }
        let (r, c) = (self.maps[0].rows(), self.maps[0].cols());
        let name = if self.maps.iter().all(|m| m.rows() == r && m.cols() == c) {
            format!("frozenlake-{r}x{c}{}", if self.slippery { "-slippery" } else { "" })
        } else {
            format!("frozenlake{}", if self.slippery { "-slippery" } else { "" })
        };
        let (notes, reward_description) = if self.published && !self.slippery {
            let task = match self.mode {
                ObservationMode::Text => PUBLISHED_TASK,
                ObservationMode::TextAndImage => PUBLISHED_TASK_VISION,
            };
            (task.to_string(), PUBLISHED_REWARD.to_string())
        } else {
            let notes = format!(
                "{INSTRUCTION} {} The episode ends at the goal, in a hole, or after {} steps.",
                if self.slippery {
                    "The ice is slippery: a move goes in the intended direction or one of the two perpendicular ones, each with probability 1/3."
                } else {
                    "Moves are deterministic."
                },
                self.max_steps
            );
            let reward = "Reward 1.0 for reaching the goal G; 0 for every other step, including falling into a hole.";
            (notes, reward.to_string())
        };
        Ok(FrozenLake {
            maps: self.maps,
            task_maps: self.task_maps,
            slippery: self.slippery,
            mode: self.mode,
            image_size: self.image_size,
            spec: EnvSpec {
                name,
                max_steps: self.max_steps,
                gamma: self.gamma,
                reward_description,
                notes,
            },
        })
    }
}

impl Environment for FrozenLake {
    type State = FrozenLakeState;
    type Action = FrozenLakeAction;

    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn tasks(&self) -> Vec<Task> {
        // On the published maps the task is the published description, as the notes are.
        let instruction = if self.spec.notes.contains(INSTRUCTION) {
            INSTRUCTION
        } else {
            self.spec.notes.as_str()
        };
        let task = |id: String, m: &Grid| Task {
            id,
            instruction: instruction.into(),
            params: json!({ "map": m.rows_text() }),
        };
        match &self.task_maps {
            None => self
                .maps
                .iter()
                .enumerate()
                .map(|(i, m)| task(format!("{}-map{i}", self.spec.name), m))
                .collect(),
            Some(tm) => tm
                .iter()
                .map(|&(t, i)| task(format!("{}-task{t}-map{i}", self.spec.name), &self.maps[i]))
                .collect(),
        }
    }

    fn reset(&self, task: &Task, _rng: &mut QRng) -> Result<FrozenLakeState> {
        let rows: Vec<String> = serde_json::from_value(task.params["map"].clone()).map_err(|e| EnvsError::Task {
            task: task.id.clone(),
            message: format!("`params.map` must be a list of rows: {e}"),
        })?;
        let grid = Grid::parse(&rows).map_err(|e| EnvsError::Task {
            task: task.id.clone(),
            message: e.to_string(),
        })?;
        // Share the environment's own map when it is one of them.
        let map = self
            .maps
            .iter()
            .find(|m| ***m == grid)
            .cloned()
            .unwrap_or_else(|| Arc::new(grid));
        let pos = map.start();
        Ok(FrozenLakeState { map, pos, error: None })
    }

    fn step(
        &self,
        state: &FrozenLakeState,
        action: &FrozenLakeAction,
        rng: &mut QRng,
    ) -> Result<StepOutcome<FrozenLakeState>> {
        if state.tile().is_terminal() {
            return Ok(StepOutcome {
                state: FrozenLakeState {
                    error: None,
                    ..state.clone()
                },
                reward: 0.0,
                terminated: true,
            });
        }
        let Some(a) = action.index() else {
            let FrozenLakeAction::Invalid(text) = action else {
                unreachable!("moves have an index")
            };
            let error = format!(
                "could not parse the action {text:?}; answer one of: left, down, right, up. The turn was wasted."
            );
            return Ok(StepOutcome {
                state: FrozenLakeState {
                    map: state.map.clone(),
                    pos: state.pos,
                    error: Some(error),
                },
                reward: 0.0,
                terminated: false,
            });
        };
        let dir = if self.slippery {
            [(a + 3) % 4, a, (a + 1) % 4][rng.random_range(0..3)]
        } else {
            a
        };
        let pos = state.map.move_from(state.pos, dir);
        let tile = state.map.tile(pos);
        Ok(StepOutcome {
            state: FrozenLakeState {
                map: state.map.clone(),
                pos,
                error: None,
            },
            reward: if tile == Tile::Goal { 1.0 } else { 0.0 },
            terminated: tile.is_terminal(),
        })
    }

    fn observe(&self, state: &FrozenLakeState) -> Observation {
        let mut obs = Observation::text(Self::render_text(state));
        if self.mode == ObservationMode::TextAndImage {
            obs.images
                .push(Image::png(render_png(&state.map, state.pos, self.image_size)));
        }
        obs
    }

    fn legal_actions(&self, _state: &FrozenLakeState) -> Option<Vec<FrozenLakeAction>> {
        Some((0..4).map(FrozenLakeAction::from_index).collect())
    }

    fn parse_action(&self, text: &str) -> FrozenLakeAction {
        let t = text
            .trim()
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_ascii_lowercase();
        match t.as_str() {
            "left" | "0" => FrozenLakeAction::Left,
            "down" | "1" => FrozenLakeAction::Down,
            "right" | "2" => FrozenLakeAction::Right,
            "up" | "3" => FrozenLakeAction::Up,
            _ => FrozenLakeAction::Invalid(text.to_string()),
        }
    }

    fn render_action(&self, action: &FrozenLakeAction) -> String {
        match action.index() {
            Some(i) => MOVES[i].to_string(),
            None => match action {
                FrozenLakeAction::Invalid(t) => t.clone(),
                _ => unreachable!("moves have an index"),
            },
        }
    }

    /// The published wording of the scoring family, the embedding family's goal texts (for
    /// text and for pictures); pictures when the observation mode gives them.
    fn profile(&self) -> EnvProfile {
        super::profile::profile(self.mode == ObservationMode::TextAndImage)
    }
}
