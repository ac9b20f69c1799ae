//! Deterministic embeddings for the loopback server's `/v1/embeddings`, built so that a test
//! can predict the sign of what the embedding family measures on FrozenLake pictures.
//!
//! ## The construction
//! Vectors have [`DIM`] = 64 dimensions in three blocks, and are L2-normalised:
//!
//! - dimension 0, the **progress axis**, shared by texts and images;
//! - dimensions 1 to 31, texts only: a hashed bag of words (lowercased runs of letters and
//!   digits, FNV-1a modulo 31), normalised to unit length;
//! - dimensions 32 to 63, images only: the mean brightness of the picture's 4 x 8 blocks,
//!   normalised to unit length (it tells pictures apart and carries no meaning).
//!
//! A **text** has 1 on the progress axis when it has the word `goal` (any case), else 0, then
//! its bag of words: a goal text is `(1, bag) / sqrt 2`, any other text is orthogonal to every
//! image.
//!
//! An **image** has the agent's progress `p` in [0, 1] on the progress axis, then its blocks:
//! `(p, 0, blocks) / sqrt(1 + p^2)`. `p` is read from the colours FrozenLake renders
//! (`qval_envs::frozenlake::render`): the agent is the red disc, the goal the gold tile.
//! With `d` the distance between their centres in cells (the cell size is estimated from
//! the disc's area, whose radius is 0.32 cells), `p = exp(-d / 2)`: 1 on the goal, 0.37 two
//! cells away. An agent in a hole (a navy pixel beside the disc, inside its cell) has
//! `p = 0`, as has a picture without an agent or a goal.
//!
//! So for an image `s` and a goal text `g`, `cos(s, g) = p / sqrt(2 (1 + p^2))`, increasing in
//! `p`; with a baseline and negatives without the word `goal`, VLM-RM and SOR's goal
//! probability increase with `p` too (a neutral text is orthogonal to every image). A
//! picture closer to the goal scores higher under every method of the family: their
//! correlation with FrozenLake's values is positive.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::shared::{Shared, apply_fault};

/// Dimensions of every vector the server returns.
pub const DIM: usize = 64;
const TEXT_START: usize = 1;
const TEXT_DIMS: usize = 31;
const IMAGE_START: usize = 32;
const BLOCK_ROWS: u32 = 4;
const BLOCK_COLS: u32 = 8;

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    if n > 0.0 {
        for x in &mut v {
            *x = (*x as f64 / n) as f32;
        }
    }
    v
}

fn fnv1a(word: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in word.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The embedding of a text (see the module docs).
pub fn text_embedding(text: &str) -> Vec<f32> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut bag = vec![0f32; TEXT_DIMS];
    for w in &words {
        bag[(fnv1a(w) % TEXT_DIMS as u64) as usize] += 1.0;
    }
    if words.is_empty() {
        bag[0] = 1.0;
    }
    let mut v = vec![0f32; DIM];
    v[0] = if words.iter().any(|w| w == "goal") { 1.0 } else { 0.0 };
    v[TEXT_START..TEXT_START + TEXT_DIMS].copy_from_slice(&normalise(bag));
    normalise(v)
}

fn is_agent(p: [u8; 3]) -> bool {
    p[0] > 180 && p[1] < 90 && p[2] < 90
}
fn is_goal(p: [u8; 3]) -> bool {
    p[0] > 200 && (150..=230).contains(&p[1]) && p[2] < 100
}
fn is_hole(p: [u8; 3]) -> bool {
    p[0] < 60 && p[1] < 80 && p[2] > 70
}

/// The agent's progress `p` in a FrozenLake picture (see the module docs).
///
/// # Errors
/// The bytes are not an image.
pub fn image_progress(png: &[u8]) -> Result<f64, String> {
    let img = image::load_from_memory(png).map_err(|e| e.to_string())?.to_rgb8();
    Ok(progress_of(&img))
}

fn progress_of(img: &image::RgbImage) -> f64 {
    let (mut agent, mut goal) = ((0.0, 0.0, 0usize), (0.0, 0.0, 0usize));
    for (x, y, p) in img.enumerate_pixels() {
        let (x, y) = (x as f64 + 0.5, y as f64 + 0.5);
        if is_agent(p.0) {
            agent = (agent.0 + x, agent.1 + y, agent.2 + 1);
        } else if is_goal(p.0) {
            goal = (goal.0 + x, goal.1 + y, goal.2 + 1);
        }
    }
    if agent.2 == 0 || goal.2 == 0 {
        return 0.0;
    }
    let (ax, ay) = (agent.0 / agent.2 as f64, agent.1 / agent.2 as f64);
    let (gx, gy) = (goal.0 / goal.2 as f64, goal.1 / goal.2 as f64);
    let cell = (agent.2 as f64 / std::f64::consts::PI).sqrt() / 0.32;
    let at = |x: f64, y: f64| {
        let x = (x.max(0.0) as u32).min(img.width() - 1);
        let y = (y.max(0.0) as u32).min(img.height() - 1);
        img.get_pixel(x, y).0
    };
    if is_hole(at(ax + 0.42 * cell, ay)) || is_hole(at(ax, ay + 0.42 * cell)) {
        return 0.0;
    }
    let d = (ax - gx).hypot(ay - gy) / cell;
    (-d / 2.0).exp()
}

/// The embedding of an encoded image (see the module docs).
///
/// # Errors
/// The bytes are not an image.
pub fn image_embedding(bytes: &[u8]) -> Result<Vec<f32>, String> {
    let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?.to_rgb8();
    let (w, h) = img.dimensions();
    let mut blocks = vec![(0f64, 0usize); (BLOCK_ROWS * BLOCK_COLS) as usize];
    for (x, y, p) in img.enumerate_pixels() {
        let k = ((y * BLOCK_ROWS / h.max(1)) * BLOCK_COLS + x * BLOCK_COLS / w.max(1)) as usize;
        let b = p.0.iter().map(|c| *c as f64).sum::<f64>() / (3.0 * 255.0);
        blocks[k] = (blocks[k].0 + b, blocks[k].1 + 1);
    }
    let mut means: Vec<f32> = blocks
        .iter()
        .map(|(s, n)| if *n == 0 { 0.0 } else { (*s / *n as f64) as f32 })
        .collect();
    if means.iter().all(|m| *m == 0.0) {
        means[0] = 1.0;
    }
    let mut v = vec![0f32; DIM];
    v[0] = progress_of(&img) as f32;
    v[IMAGE_START..].copy_from_slice(&normalise(means));
    Ok(normalise(v))
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"object": "error", "message": message, "code": 400})),
    )
        .into_response()
}

/// The decoded bytes of a `data:...;base64,...` URL.
fn decode_data_url(url: &str) -> Result<Vec<u8>, String> {
    let (head, data) = url
        .split_once(',')
        .ok_or_else(|| format!("not a data URL: {}", &url[..url.len().min(40)]))?;
    if !(head.starts_with("data:") && head.ends_with(";base64")) {
        return Err(format!("not a base64 data URL: {head}"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("bad base64: {e}"))
}

/// What a request asks to embed.
enum Item {
    Text(String),
    Image(Vec<u8>),
}

/// The items of a request: `input` (a string or a list of strings), or vLLM's chat-style
/// `messages` with one image or text.
fn items_of(body: &Value) -> Result<Vec<Item>, String> {
    if let Some(messages) = body["messages"].as_array() {
        let mut texts = Vec::new();
        let mut images = Vec::new();
        for m in messages {
            match &m["content"] {
                Value::String(s) => texts.push(s.clone()),
                Value::Array(parts) => {
                    for p in parts {
                        match p["type"].as_str() {
                            Some("text") => texts.push(p["text"].as_str().unwrap_or_default().to_string()),
                            Some("image_url") => {
                                images.push(decode_data_url(p["image_url"]["url"].as_str().unwrap_or_default())?)
                            }
                            other => return Err(format!("unsupported content part {other:?}")),
                        }
                    }
                }
                _ => return Err("a message without content".into()),
            }
        }
        return match (images.len(), texts.is_empty()) {
            (1, true) => Ok(images.into_iter().map(Item::Image).collect()),
            (0, false) => Ok(vec![Item::Text(texts.join("\n"))]),
            _ => Err("give one image, or text, per request".into()),
        };
    }
    match &body["input"] {
        Value::String(s) => Ok(vec![Item::Text(s.clone())]),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(|s| Item::Text(s.to_string()))
                    .ok_or_else(|| "`input` must hold strings".to_string())
            })
            .collect(),
        _ => Err("give `input` or `messages`".into()),
    }
}

/// `POST /v1/embeddings`.
pub(crate) async fn embeddings(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    let n = shared.requests.fetch_add(1, Ordering::SeqCst);
    shared.embedding_requests.fetch_add(1, Ordering::SeqCst);
    let model = body["model"].as_str().unwrap_or("qval-embed").to_string();
    let items = match items_of(&body) {
        Ok(items) => items,
        Err(m) => return bad_request(m),
    };
    let all_text: String = items
        .iter()
        .filter_map(|i| match i {
            Item::Text(t) => Some(t.as_str()),
            Item::Image(_) => None,
        })
        .collect::<Vec<_>>()
        .join("\n");
    if let Some(r) = apply_fault(&shared, n, &all_text, &model).await {
        return r;
    }
    let mut data = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let embedding = match item {
            Item::Text(t) => text_embedding(t),
            Item::Image(bytes) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                shared.embedded_images.lock().expect("lock").push(h.finish());
                match image_embedding(bytes) {
                    Ok(v) => v,
                    Err(e) => return bad_request(format!("the image does not decode: {e}")),
                }
            }
        };
        data.push(json!({"object": "embedding", "index": index, "embedding": embedding}));
    }
    // Answer in reverse order: clients must sort by `index`.
    data.reverse();
    Json(json!({
        "object": "list",
        "model": model,
        "data": data,
        "usage": {"prompt_tokens": items.len(), "total_tokens": items.len()},
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn pictures_nearer_the_goal_are_nearer_the_goal_text() {
        use qval_envs::frozenlake::render_png;
        let grid = qval_envs::frozenlake::Grid::parse(&["SFFF", "FHFH", "FFFH", "HFFG"]).unwrap();
        let goal = text_embedding("The agent reached the GOAL.");
        let scores: Vec<f64> = [0usize, 6, 10, 14, 15]
            .iter()
            .map(|&pos| dot(&image_embedding(&render_png(&grid, pos, 128)).unwrap(), &goal))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
        assert!((image_progress(&render_png(&grid, 15, 128)).unwrap() - 1.0).abs() < 0.05);
        // In a hole (cell 5): no progress, orthogonal to every text.
        assert_eq!(image_progress(&render_png(&grid, 5, 128)).unwrap(), 0.0);
        assert!(dot(&image_embedding(&render_png(&grid, 5, 128)).unwrap(), &goal).abs() < 1e-6);
        let neutral = text_embedding("a blank frozen lake grid");
        assert!(dot(&image_embedding(&render_png(&grid, 14, 128)).unwrap(), &neutral).abs() < 1e-6);
        assert!((dot(&goal, &goal) - 1.0).abs() < 1e-6);
        // Small pictures of an 8x8 map (8-pixel cells) still read right.
        let big = qval_envs::frozenlake::Grid::parse(&[
            "SFFFFFFF", "FFFFFFFF", "FFFHFFFF", "FFFFFHFF", "FFFHFFFF", "FHHFFFHF", "FHFFHFFF", "FFFHFFFG",
        ])
        .unwrap();
        let p: Vec<f64> = [0usize, 9, 18, 27, 36, 45, 54, 63]
            .iter()
            .map(|&pos| image_progress(&render_png(&big, pos, 64)).unwrap())
            .collect();
        assert!(p.windows(2).all(|w| w[0] < w[1]) && (p[7] - 1.0).abs() < 0.05, "{p:?}");
        assert_eq!(image_progress(&render_png(&big, 19, 64)).unwrap(), 0.0);
    }
}
