//! The embedding family: similarity of a state's embedding to a goal, with any encoder.
//!
//! Q is scored on the next state s', V on the state s. Methods:
//! - [`GoalCosine`]: cos(e(s), e(goal));
//! - [`VlmRm`]: the VLM-RM baseline projection (alpha 0.5): d = normalize(g - b),
//!   proj = b + ((s - b) . d) d, score = 1 - 0.5 ||alpha proj + (1 - alpha) s - g||^2;
//! - [`SorSoftmax`]: softmax of cos/T over [goal, negatives] (T 0.07; negatives equal to the
//!   goal masked), score = p(goal); [`SorSoftmax::threshold`] scores 1 if p > beta (0.5).
//!
//! Encoders implement [`TextEncoder`] (or [`ImageEncoder`]); [`CachedEncoder`] computes the
//! embedding of identical texts and images once. The all-MiniLM-L6-v2 encoder is in the
//! `qval-encoders` crate; an OpenAI-compatible `/embeddings` server (vLLM serving CLIP or
//! SigLIP) is `qval_llm::HttpEncoder`.
//!
//! ## On images (the published VLE methods)
//! [`EmbeddingMethod::on_images`] scores the state's **picture** instead of its text: the last
//! image of s' for Q (s for V) is embedded with the [`ImageEncoder`], and compared with the
//! goal, baseline and negative **texts** embedded by the [`TextEncoder`] of the same model (a
//! CLIP-style shared space). Published defaults: the goal is each point's task text (the
//! environment's [`qval_core::EnvProfile::image_goal_texts`], such as FrozenLake's), alpha
//! 0.5, T 0.07, beta 0.5; a point without an image scores NaN with the reason.

use async_trait::async_trait;

pub use qval_core::encoder::{CachedEncoder, ImageEncoder, TextEncoder, cosine};
/// The texts an embedding method compares with: an environment's own, from its profile
/// ([`qval_core::EnvProfile::goal_texts`], [`qval_core::EnvProfile::image_goal_texts`]).
pub use qval_core::profile::GoalTexts;
use qval_core::{CoreError, DenseSignalMethod, EvaluationPoint, Image, MethodContext, Result, Signal};

/// The goal text of `point`: the texts' goal, else the point's task instruction.
fn goal_for(texts: &GoalTexts, point: &EvaluationPoint) -> String {
    texts
        .goal
        .clone()
        .unwrap_or_else(|| point.task.instruction.trim().to_string())
}

/// The state image a method scores: the last image of s' for the signals of an action, of s
/// for V and potential.
fn state_image(point: &EvaluationPoint, signal: Signal) -> Option<&Image> {
    match signal.has_action() {
        false => point.observation.images.last(),
        true => point.next_observation.images.last(),
    }
}

/// The state text a method scores: s' for the signals of an action, s for V and potential.
fn state_text(point: &EvaluationPoint, signal: Signal) -> String {
    match signal.has_action() {
        false => point.observation.text.clone(),
        true => point.next_observation.text.clone(),
    }
}

/// Which embedding score.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Cosine,
    VlmRm { alpha: f64 },
    Sor { temperature: f64, threshold: Option<f64> },
}

/// An embedding method: one of the scores above over an encoder.
pub struct EmbeddingMethod<E> {
    encoder: E,
    texts: GoalTexts,
    signal: Signal,
    kind: Kind,
}

/// cos(e(state), e(goal)).
pub type GoalCosine<E> = EmbeddingMethod<E>;
/// The VLM-RM baseline projection.
pub type VlmRm<E> = EmbeddingMethod<E>;
/// SOR's softmax over goal and negatives.
pub type SorSoftmax<E> = EmbeddingMethod<E>;

impl<E: TextEncoder> EmbeddingMethod<E> {
    /// Goal cosine.
    pub fn goal_cosine(encoder: E, texts: GoalTexts, signal: Signal) -> Self {
        EmbeddingMethod {
            encoder,
            texts,
            signal,
            kind: Kind::Cosine,
        }
    }
    /// VLM-RM with `alpha` (published 0.5).
    pub fn vlm_rm(encoder: E, texts: GoalTexts, signal: Signal, alpha: f64) -> Self {
        EmbeddingMethod {
            encoder,
            texts,
            signal,
            kind: Kind::VlmRm { alpha },
        }
    }
    /// SOR softmax with `temperature` (published 0.07).
    pub fn sor(encoder: E, texts: GoalTexts, signal: Signal, temperature: f64) -> Self {
        EmbeddingMethod {
            encoder,
            texts,
            signal,
            kind: Kind::Sor {
                temperature,
                threshold: None,
            },
        }
    }
    /// SOR threshold: 1 if p(goal) > `beta` (published 0.5), else 0.
    pub fn threshold(encoder: E, texts: GoalTexts, signal: Signal, temperature: f64, beta: f64) -> Self {
        EmbeddingMethod {
            encoder,
            texts,
            signal,
            kind: Kind::Sor {
                temperature,
                threshold: Some(beta),
            },
        }
    }

    fn score(&self, s: &[f32], g: &[f32], extra: &[Vec<f32>]) -> f64 {
        match self.kind {
            Kind::Cosine => cosine(s, g),
            Kind::VlmRm { alpha } => {
                let b = &extra[0];
                let diff: Vec<f64> = g.iter().zip(b).map(|(x, y)| (*x - *y) as f64).collect();
                let norm = diff.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-300);
                let d: Vec<f64> = diff.iter().map(|x| x / norm).collect();
                let t: f64 = s
                    .iter()
                    .zip(b)
                    .zip(&d)
                    .map(|((si, bi), di)| (*si - *bi) as f64 * di)
                    .sum();
                let dist2: f64 = (0..s.len())
                    .map(|i| {
                        let proj = b[i] as f64 + t * d[i];
                        let v = alpha * proj + (1.0 - alpha) * s[i] as f64 - g[i] as f64;
                        v * v
                    })
                    .sum();
                1.0 - 0.5 * dist2
            }
            Kind::Sor { temperature, threshold } => {
                let goal_logit = cosine(s, g) / temperature;
                // Negatives identical to the goal are masked.
                let logits: Vec<f64> = std::iter::once(goal_logit)
                    .chain(
                        extra
                            .iter()
                            .filter(|n| n.as_slice() != g)
                            .map(|n| cosine(s, n) / temperature),
                    )
                    .collect();
                let m = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
                let p = (goal_logit - m).exp() / z;
                match threshold {
                    Some(beta) => f64::from(u8::from(p > beta)),
                    None => p,
                }
            }
        }
    }

    /// The same score on the state's picture (see the [module docs](self)): `encoder` must
    /// also be an [`ImageEncoder`] into the space of its texts (CLIP, SigLIP).
    pub fn on_images(self) -> OnImages<E> {
        OnImages(self)
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Cosine => "goal-cosine",
            Kind::VlmRm { .. } => "vlm-rm",
            Kind::Sor { threshold: None, .. } => "sor",
            Kind::Sor { threshold: Some(_), .. } => "sor-threshold",
        }
    }

    fn extra_texts(&self) -> Vec<String> {
        match self.kind {
            Kind::Cosine => vec![],
            Kind::VlmRm { .. } => vec![self.texts.baseline.clone()],
            Kind::Sor { .. } => self.texts.negatives.clone(),
        }
    }
}

#[async_trait]
impl<E: TextEncoder> DenseSignalMethod for EmbeddingMethod<E> {
    fn name(&self) -> String {
        format!(
            "{}-{}-{}",
            self.kind_name(),
            self.encoder.name(),
            self.signal.to_string().to_lowercase()
        )
    }
    fn signal(&self) -> Signal {
        self.signal
    }
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        self.evaluate_batch(std::slice::from_ref(point), ctx)
            .await
            .pop()
            .expect("one result")
    }
    /// Encodes the batch's states, goals and fixed texts in one call.
    async fn evaluate_batch(&self, points: &[EvaluationPoint], _ctx: &MethodContext) -> Vec<Result<f64>> {
        let extra = self.extra_texts();
        let mut texts: Vec<String> = extra.clone();
        for p in points {
            texts.push(state_text(p, self.signal));
            texts.push(goal_for(&self.texts, p));
        }
        let vecs = match self.encoder.encode(&texts).await {
            Ok(v) if v.len() == texts.len() => v,
            Ok(v) => {
                let e = format!("the encoder returned {} vectors for {} texts", v.len(), texts.len());
                return points
                    .iter()
                    .map(|_| Err(CoreError::Method(e.clone().into())))
                    .collect();
            }
            Err(e) => return points.iter().map(|_| Err(e.for_each_point())).collect(),
        };
        let (fixed, rest) = vecs.split_at(extra.len());
        rest.chunks(2).map(|sg| Ok(self.score(&sg[0], &sg[1], fixed))).collect()
    }
}

/// An [`EmbeddingMethod`] scoring the state's picture against texts: made by
/// [`EmbeddingMethod::on_images`]. Named like the method, with `-image` appended
/// (`vlm-rm-clip-q-image`).
pub struct OnImages<E>(EmbeddingMethod<E>);

#[async_trait]
impl<E: TextEncoder + ImageEncoder> DenseSignalMethod for OnImages<E> {
    fn name(&self) -> String {
        let m = &self.0;
        format!(
            "{}-{}-{}-image",
            m.kind_name(),
            TextEncoder::name(&m.encoder),
            m.signal.to_string().to_lowercase()
        )
    }
    fn signal(&self) -> Signal {
        self.0.signal
    }
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        self.evaluate_batch(std::slice::from_ref(point), ctx)
            .await
            .pop()
            .expect("one result")
    }
    /// Encodes the batch's goal and fixed texts in one call and its pictures in another.
    async fn evaluate_batch(&self, points: &[EvaluationPoint], _ctx: &MethodContext) -> Vec<Result<f64>> {
        let m = &self.0;
        let extra = m.extra_texts();
        let mut texts: Vec<String> = extra.clone();
        texts.extend(points.iter().map(|p| goal_for(&m.texts, p)));
        let images: Vec<Image> = points
            .iter()
            .filter_map(|p| state_image(p, m.signal).cloned())
            .collect();
        let failed = |e: String| {
            points
                .iter()
                .map(|_| Err(CoreError::Method(e.clone().into())))
                .collect()
        };
        let t = match m.encoder.encode(&texts).await {
            Ok(v) if v.len() == texts.len() => v,
            Ok(v) => {
                return failed(format!(
                    "the encoder returned {} vectors for {} texts",
                    v.len(),
                    texts.len()
                ));
            }
            Err(e) => return points.iter().map(|_| Err(e.for_each_point())).collect(),
        };
        let mut s = match m.encoder.encode_images(&images).await {
            Ok(v) if v.len() == images.len() => v.into_iter(),
            Ok(v) => {
                return failed(format!(
                    "the encoder returned {} vectors for {} images",
                    v.len(),
                    images.len()
                ));
            }
            Err(e) => return points.iter().map(|_| Err(e.for_each_point())).collect(),
        };
        let (fixed, goals) = t.split_at(extra.len());
        points
            .iter()
            .zip(goals)
            .map(|(p, g)| match state_image(p, m.signal) {
                Some(_) => Ok(m.score(&s.next().expect("one vector per image"), g, fixed)),
                None => Err(CoreError::Method(
                    format!(
                        "point `{}` has no {} image to score",
                        p.id,
                        if m.signal == Signal::V { "state" } else { "next-state" }
                    )
                    .into(),
                )),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qval_core::{Observation, Task};
    use std::collections::HashMap;

    /// Maps each known text to a fixed unit vector.
    struct Table(HashMap<String, Vec<f32>>);

    #[async_trait]
    impl TextEncoder for Table {
        fn name(&self) -> String {
            "table".into()
        }
        async fn encode(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
            texts
                .iter()
                .map(|t| {
                    self.0
                        .get(t)
                        .cloned()
                        .ok_or_else(|| CoreError::Method(format!("unknown text {t:?}").into()))
                })
                .collect()
        }
    }

    fn unit(v: [f32; 3]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn point(next: &str) -> EvaluationPoint {
        EvaluationPoint {
            id: "p".into(),
            trajectory_index: 0,
            step_index: 0,
            task: Task {
                id: "t".into(),
                instruction: "goal".into(),
                params: Default::default(),
            },
            history: vec![],
            state: Default::default(),
            observation: Observation::text("now"),
            action: Default::default(),
            action_text: "a".into(),
            reward: 0.0,
            next_state: Default::default(),
            next_observation: Observation::text(next),
            terminated: false,
            candidate_of: None,
            thought: None,
        }
    }

    fn texts() -> GoalTexts {
        GoalTexts {
            goal: None,
            baseline: "base".into(),
            negatives: vec!["neg".into(), "goal".into()],
        }
    }

    fn table() -> Table {
        Table(HashMap::from([
            ("goal".to_string(), unit([1.0, 0.0, 0.0])),
            ("base".to_string(), unit([0.0, 1.0, 0.0])),
            ("neg".to_string(), unit([0.0, 0.0, 1.0])),
            ("near".to_string(), unit([0.9, 0.1, 0.0])),
            ("far".to_string(), unit([0.0, 0.2, 1.0])),
            ("now".to_string(), unit([0.5, 0.5, 0.0])),
        ]))
    }

    fn ctx() -> MethodContext {
        MethodContext {
            env_name: "x".into(),
            reward_description: String::new(),
            notes: String::new(),
            gamma: 0.9,
            disclose_gamma: true,
            include_next_state: true,
            history_limit: 40,
            max_steps: 10,
            policy: Default::default(),
            step_penalty: 0.0,
            disclose_step_penalty: false,
            include_current_thoughts: false,
            include_history_thoughts: false,
            example_trajectories: String::new(),
            profile: Default::default(),
        }
    }

    #[tokio::test]
    async fn scores_follow_the_published_formulas() {
        let (near, far) = (point("near"), point("far"));
        let cos = EmbeddingMethod::goal_cosine(table(), texts(), Signal::Q);
        let a = cos.evaluate(&near, &ctx()).await.unwrap();
        assert!((a - cosine(&unit([0.9, 0.1, 0.0]), &unit([1.0, 0.0, 0.0]))).abs() < 1e-12);
        assert!(a > cos.evaluate(&far, &ctx()).await.unwrap());
        // V scores the state, not the next state.
        let v = EmbeddingMethod::goal_cosine(table(), texts(), Signal::V)
            .evaluate(&far, &ctx())
            .await
            .unwrap();
        assert!((v - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        // VLM-RM by hand: b = e2, g = e1, d = (e1 - e2)/sqrt2; s = near.
        let s = unit([0.9, 0.1, 0.0]);
        let (g, b) = ([1.0f64, 0.0, 0.0], [0.0f64, 1.0, 0.0]);
        let d = [1.0 / 2f64.sqrt(), -1.0 / 2f64.sqrt(), 0.0];
        let t: f64 = (0..3).map(|i| (s[i] as f64 - b[i]) * d[i]).sum();
        let dist2: f64 = (0..3)
            .map(|i| (0.5 * (b[i] + t * d[i]) + 0.5 * s[i] as f64 - g[i]).powi(2))
            .sum();
        let vlm = EmbeddingMethod::vlm_rm(table(), texts(), Signal::Q, 0.5)
            .evaluate(&near, &ctx())
            .await
            .unwrap();
        assert!((vlm - (1.0 - 0.5 * dist2)).abs() < 1e-6, "{vlm}");
        // SOR: the negative equal to the goal is masked; two logits remain.
        let sor = EmbeddingMethod::sor(table(), texts(), Signal::Q, 0.07)
            .evaluate(&near, &ctx())
            .await
            .unwrap();
        let (lg, ln) = (
            cosine(&s, &unit([1.0, 0.0, 0.0])) / 0.07,
            cosine(&s, &unit([0.0, 0.0, 1.0])) / 0.07,
        );
        assert!((sor - 1.0 / (1.0 + (ln - lg).exp())).abs() < 1e-9, "{sor}");
        let th = EmbeddingMethod::threshold(table(), texts(), Signal::Q, 0.07, 0.5);
        assert_eq!(th.evaluate(&near, &ctx()).await.unwrap(), 1.0);
        assert_eq!(th.evaluate(&far, &ctx()).await.unwrap(), 0.0);
        assert_eq!(th.name(), "sor-threshold-table-q");
        // An encoder failure is a NaN with the reason, for every point of the batch.
        let r = cos.evaluate_batch(&[point("unknown")], &ctx()).await;
        assert!(r[0].as_ref().unwrap_err().to_string().contains("unknown text"));
    }

    /// Pictures are looked up by their bytes as text.
    #[async_trait]
    impl ImageEncoder for Table {
        fn name(&self) -> String {
            "table".into()
        }
        async fn encode_images(&self, images: &[Image]) -> Result<Vec<Vec<f32>>> {
            let texts: Vec<String> = images.iter().map(|i| String::from_utf8_lossy(&i.data).into()).collect();
            self.encode(&texts).await
        }
    }

    #[tokio::test]
    async fn on_images_the_last_picture_of_the_scored_state_meets_the_texts() {
        let mut p = point("far");
        p.observation.images = vec![Image::png(b"far".to_vec()), Image::png(b"now".to_vec())];
        p.next_observation.images = vec![Image::png(b"near".to_vec())];
        let q = EmbeddingMethod::goal_cosine(table(), texts(), Signal::Q).on_images();
        assert_eq!(q.name(), "goal-cosine-table-q-image");
        let v = q.evaluate(&p, &ctx()).await.unwrap();
        assert!((v - cosine(&unit([0.9, 0.1, 0.0]), &unit([1.0, 0.0, 0.0]))).abs() < 1e-9);
        // V: the state's last picture ("now"), not its text ("now" too) nor the first picture.
        let vs = EmbeddingMethod::sor(table(), texts(), Signal::V, 0.07).on_images();
        let s = unit([0.5, 0.5, 0.0]);
        let (lg, ln) = (
            cosine(&s, &unit([1.0, 0.0, 0.0])) / 0.07,
            cosine(&s, &unit([0.0, 0.0, 1.0])) / 0.07,
        );
        let got = vs.evaluate(&p, &ctx()).await.unwrap();
        assert!((got - 1.0 / (1.0 + (ln - lg).exp())).abs() < 1e-9, "{got}");
        // A point without a picture is a NaN with the reason; the others are scored.
        let r = q.evaluate_batch(&[point("near"), p], &ctx()).await;
        assert!(r[0].as_ref().unwrap_err().to_string().contains("no next-state image"));
        assert!(r[1].is_ok());
    }
}
