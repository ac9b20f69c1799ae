//! FrozenLake against gymnasium's semantics.

use qval_core::Environment;
use qval_core::seed::rng_for;
use qval_envs::frozenlake::{FrozenLake, FrozenLakeAction, Grid, ObservationMode, Tile, solver};
use std::sync::Arc;

fn env4() -> FrozenLake {
    FrozenLake::builder().preset_4x4().build().unwrap()
}

#[test]
fn presets_are_gymnasiums() {
    assert_eq!(Grid::preset_4x4().rows_text(), ["SFFF", "FHFH", "FFFH", "HFFG"]);
    assert_eq!(
        Grid::preset_8x8().rows_text(),
        [
            "SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFHF", "FFFHFFFG"
        ]
    );
}

#[test]
fn moving_off_the_grid_keeps_the_agent_in_place() {
    let g = Grid::preset_4x4();
    assert_eq!(g.move_from(0, 0), 0); // left at the left edge
    assert_eq!(g.move_from(0, 3), 0); // up at the top
    assert_eq!(g.move_from(3, 2), 3); // right at the right edge
    assert_eq!(g.move_from(15, 1), 15); // down at the bottom
    assert_eq!(g.move_from(5, 0), 4);
    assert_eq!(g.move_from(5, 1), 9);
    assert_eq!(g.move_from(5, 2), 6);
    assert_eq!(g.move_from(5, 3), 1);
}

#[test]
fn holes_end_with_zero_and_the_goal_pays_one() {
    let env = env4();
    let map = env.maps()[0].clone();
    let mut rng = rng_for(1, &[]);
    // From cell 1 (row 0, col 1), down is the hole at cell 5.
    let out = env
        .step(&env.state_at(&map, 1), &FrozenLakeAction::Down, &mut rng)
        .unwrap();
    assert_eq!((out.state.pos, out.reward, out.terminated), (5, 0.0, true));
    assert_eq!(out.state.tile(), Tile::Hole);
    // From cell 14, right is the goal.
    let out = env
        .step(&env.state_at(&map, 14), &FrozenLakeAction::Right, &mut rng)
        .unwrap();
    assert_eq!((out.state.pos, out.reward, out.terminated), (15, 1.0, true));
    // A safe move neither pays nor ends.
    let out = env
        .step(&env.state_at(&map, 0), &FrozenLakeAction::Right, &mut rng)
        .unwrap();
    assert_eq!((out.state.pos, out.reward, out.terminated), (1, 0.0, false));
    // A terminal state stays terminal with no reward.
    let out = env
        .step(&env.state_at(&map, 15), &FrozenLakeAction::Left, &mut rng)
        .unwrap();
    assert_eq!((out.state.pos, out.reward, out.terminated), (15, 0.0, true));
}

#[test]
fn slippery_moves_go_three_ways_with_equal_probability() {
    let env = FrozenLake::builder().preset_8x8().slippery(true).build().unwrap();
    let map = env.maps()[0].clone();
    let mut rng = rng_for(7, &[]);
    let s = env.state_at(&map, 9); // row 1, col 1: all four neighbours are frozen
    let n = 60_000;
    let mut counts = [0usize; 64];
    for _ in 0..n {
        counts[env.step(&s, &FrozenLakeAction::Down, &mut rng).unwrap().state.pos] += 1;
    }
    // Down from 9: intended 17, perpendicular left 8 and right 10; never up (1).
    assert_eq!(counts[1], 0);
    assert_eq!(counts[9], 0);
    for cell in [8, 10, 17] {
        let p = counts[cell] as f64 / n as f64;
        // 1/3 +- 5 standard deviations (sd = sqrt(2/9/n) ~ 0.0019).
        assert!((p - 1.0 / 3.0).abs() < 0.0096, "cell {cell}: {p}");
    }
    // The exact model says the same.
    let mut model = map.transitions(9, 1, true);
    model.sort_by_key(|(_, c)| *c);
    assert_eq!(model.iter().map(|(_, c)| *c).collect::<Vec<_>>(), vec![8, 10, 17]);
    // At a wall, as in gymnasium's `P`: left from cell 0 lists up (stay), left (stay) and
    // down, each 1/3, in that order and not merged.
    let third = 1.0 / 3.0;
    assert_eq!(map.transitions(0, 0, true), vec![(third, 0), (third, 0), (third, 8)]);
}

#[test]
fn step_is_pure() {
    let env = FrozenLake::builder().preset_8x8().slippery(true).build().unwrap();
    let s = env.state_at(&env.maps()[0], 9);
    for seed in 0..50 {
        let a = env.step(&s, &FrozenLakeAction::Right, &mut rng_for(seed, &[])).unwrap();
        let b = env.step(&s, &FrozenLakeAction::Right, &mut rng_for(seed, &[])).unwrap();
        assert_eq!(a, b);
    }
}

#[test]
fn random_maps_are_valid_seeded_and_varied() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..200 {
        let g = Grid::random(8, 0.8, seed).unwrap();
        assert_eq!(g.tile(0), Tile::Start);
        assert_eq!(g.tile(63), Tile::Goal);
        assert!(g.goal_reachable(), "seed {seed}");
        assert_eq!(g, Grid::random(8, 0.8, seed).unwrap());
        seen.insert(g.rows_text());
        let holes = (0..64).filter(|&c| g.tile(c) == Tile::Hole).count();
        assert!(holes < 40, "p = 0.8 leaves most tiles frozen");
    }
    assert!(seen.len() > 190, "maps vary with the seed");
    // Hole share near 0.2 over many maps (valid maps are slightly biased to fewer holes).
    let holes: usize = (0..200)
        .map(|s| {
            let g = Grid::random(8, 0.8, s).unwrap();
            (0..64).filter(|&c| g.tile(c) == Tile::Hole).count()
        })
        .sum();
    let share = holes as f64 / (200.0 * 62.0);
    assert!((0.12..0.22).contains(&share), "hole share {share}");
}

#[test]
fn bad_maps_are_refused_with_the_place() {
    let e = Grid::parse(&["SFX", "FFG"]).unwrap_err().to_string();
    assert!(e.contains("row 0 column 2") && e.contains('X'), "{e}");
    assert!(Grid::parse(&["SFF", "FG"]).unwrap_err().to_string().contains("row 1"));
    assert!(
        Grid::parse(&["FFF", "FFG"])
            .unwrap_err()
            .to_string()
            .contains("no start")
    );
    assert!(
        Grid::parse(&["SFF", "FFF"])
            .unwrap_err()
            .to_string()
            .contains("no goal")
    );
    assert!(FrozenLake::builder().build().is_err());
    assert!(FrozenLake::builder().preset_4x4().gamma(1.5).build().is_err());
    assert!(FrozenLake::builder().map(&["SQ", "FG"]).build().is_err());
}

#[test]
fn text_observation_and_wasted_turns() {
    let env = env4();
    let task = &env.tasks()[0];
    let mut rng = rng_for(0, &[]);
    let s = env.reset(task, &mut rng).unwrap();
    assert_eq!(env.observe(&s).text, "@ F F F\nF H F H\nF F F H\nH F F G");
    let bad = env.parse_action("jump!");
    assert_eq!(bad, FrozenLakeAction::Invalid("jump!".into()));
    let out = env.step(&s, &bad, &mut rng).unwrap();
    assert_eq!((out.state.pos, out.reward, out.terminated), (0, 0.0, false));
    let text = env.observe(&out.state).text;
    assert!(
        text.starts_with("Error: could not parse the action \"jump!\""),
        "{text}"
    );
    assert!(text.ends_with("@ F F F\nF H F H\nF F F H\nH F F G"));
    // The error is gone after a valid move.
    let next = env.step(&out.state, &env.parse_action(" Right. "), &mut rng).unwrap();
    assert_eq!(env.observe(&next.state).text, "S @ F F\nF H F H\nF F F H\nH F F G");
    for (i, word) in ["left", "down", "right", "up"].iter().enumerate() {
        assert_eq!(env.parse_action(word), FrozenLakeAction::from_index(i));
        assert_eq!(env.parse_action(&i.to_string()), FrozenLakeAction::from_index(i));
        assert_eq!(env.render_action(&FrozenLakeAction::from_index(i)), *word);
    }
}

#[test]
fn states_round_trip_through_json() {
    let env = FrozenLake::builder().random_maps(3, 8, 42).build().unwrap();
    let s = env.state_at(&env.maps()[2], 17);
    let v = serde_json::to_value(&s).unwrap();
    let back: qval_envs::frozenlake::FrozenLakeState = serde_json::from_value(v).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.map.key(), s.map.key());
}

#[test]
fn png_rendering_shows_tiles_and_agent() {
    let env = FrozenLake::builder()
        .preset_4x4()
        .observation(ObservationMode::TextAndImage)
        .image_size(64)
        .build()
        .unwrap();
    let map = env.maps()[0].clone();
    let obs = env.observe(&env.state_at(&map, 0));
    assert_eq!(obs.images.len(), 1);
    assert_eq!(obs.images[0].media_type, "image/png");
    let img = image::load_from_memory(&obs.images[0].data).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (64, 64));
    // Agent (red) at the centre of cell 0; hole (dark) at the centre of cell 5; goal (gold) at 15.
    assert_eq!(img.get_pixel(8, 8).0, [220, 40, 40]);
    assert_eq!(img.get_pixel(24, 24).0, [25, 45, 90]);
    assert_eq!(img.get_pixel(56, 56).0, [250, 195, 40]);
    assert!(obs.images[0].data_url().starts_with("data:image/png;base64,iVBOR"));
}

#[test]
fn value_iteration_matches_hand_computed_values() {
    let g = Grid::preset_4x4();
    let v = solver::optimal_values(&g, false, 0.9, None);
    // Cell 14 is next to the goal: Q(right) = 1. Cell 13: 0.9. Cell 0: 6 steps away.
    assert_eq!(v.q[14][2], 1.0);
    assert_eq!(v.v[13], 0.9);
    assert!((v.v[0] - 0.9f64.powi(5)).abs() < 1e-15);
    // Finite horizon: with 5 steps from the start the goal (6 away) is out of reach.
    assert_eq!(solver::optimal_values(&g, false, 0.9, Some(5)).v[0], 0.0);
    assert!(solver::optimal_values(&g, false, 0.9, Some(6)).v[0] > 0.0);
    // The reference policy from the start goes down (right also optimal? no: both 6 steps;
    // tie broken right before down).
    let pi = solver::reference_policy(&g, false, 0.9);
    assert_eq!(pi[0], 2, "ties prefer right, then down");
    assert_eq!(pi[14], 2);
    let _ = Arc::new(g);
}

#[test]
fn frozenlake_passes_the_conformance_checker() {
    for slippery in [false, true] {
        let env = FrozenLake::builder()
            .random_maps(3, 8, 1)
            .slippery(slippery)
            .build()
            .unwrap();
        qval_core::check_environment(&env, 5, 9).unwrap();
    }
    let env = FrozenLake::builder()
        .preset_4x4()
        .observation(ObservationMode::TextAndImage)
        .image_size(32)
        .build()
        .unwrap();
    qval_core::check_environment(&env, 2, 9).unwrap();
}

/// An environment whose step depends on a hidden counter: the checker must catch it.
struct Impure {
    inner: FrozenLake,
    calls: std::sync::atomic::AtomicUsize,
}

impl Environment for Impure {
    type State = <FrozenLake as Environment>::State;
    type Action = FrozenLakeAction;
    fn spec(&self) -> &qval_core::EnvSpec {
        self.inner.spec()
    }
    fn tasks(&self) -> Vec<qval_core::Task> {
        self.inner.tasks()
    }
    fn reset(&self, task: &qval_core::Task, rng: &mut qval_core::QRng) -> qval_core::Result<Self::State> {
        self.inner.reset(task, rng)
    }
    fn step(
        &self,
        s: &Self::State,
        a: &FrozenLakeAction,
        rng: &mut qval_core::QRng,
    ) -> qval_core::Result<qval_core::StepOutcome<Self::State>> {
        let mut out = self.inner.step(s, a, rng)?;
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2 == 1 {
            out.reward += 1.0;
        }
        Ok(out)
    }
    fn observe(&self, s: &Self::State) -> qval_core::Observation {
        self.inner.observe(s)
    }
    fn legal_actions(&self, s: &Self::State) -> Option<Vec<FrozenLakeAction>> {
        self.inner.legal_actions(s)
    }
    fn parse_action(&self, t: &str) -> FrozenLakeAction {
        self.inner.parse_action(t)
    }
    fn render_action(&self, a: &FrozenLakeAction) -> String {
        self.inner.render_action(a)
    }
}

#[test]
fn the_conformance_checker_catches_an_impure_step() {
    let env = Impure {
        inner: env4(),
        calls: Default::default(),
    };
    let err = qval_core::check_environment(&env, 1, 0).unwrap_err().to_string();
    assert!(err.contains("step is not pure"), "{err}");
}
