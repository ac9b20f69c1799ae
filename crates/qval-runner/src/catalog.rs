//! The QVal-v1 catalog: the published benchmark's 21 methods in 7 families with their
//! published parameters, and how each is written in a qval experiment file.
//!
//! Facts from the published catalog (`catalogs/qval_benchmark/catalog.py` of the public
//! repository bethgelab/qval, with `src/qval/registry/`), not its code. Every LLM method there
//! uses prompt preset `v2` and the policy assumption `optimal`; text methods score the first
//! 100 points on FrozenLake and TerminalBench.

use serde::Serialize;

/// One published method.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CatalogEntry {
    /// The paper's name.
    pub name: &'static str,
    /// The published catalog's base name (files are `<base>_qv` / `<base>_sv`).
    pub published: &'static str,
    /// The paper's family.
    pub family: &'static str,
    /// Signals: `q`, or `q, v`.
    pub signals: &'static str,
    /// `text`, `vision`, or `text, vision`.
    pub modalities: &'static str,
    /// The published parameters.
    pub published_params: &'static str,
    /// How to write it in an experiment file (`type` and parameters), where implemented.
    pub qval: Option<&'static str>,
    /// What is missing, where something is.
    pub note: &'static str,
}

// One argument per column of the published table reads better here than a struct literal.
#[allow(clippy::too_many_arguments)]
const fn entry(
    name: &'static str,
    published: &'static str,
    family: &'static str,
    signals: &'static str,
    modalities: &'static str,
    published_params: &'static str,
    qval: Option<&'static str>,
    note: &'static str,
) -> CatalogEntry {
    CatalogEntry {
        name,
        published,
        family,
        signals,
        modalities,
        published_params,
        qval,
        note,
    }
}

/// The 21 methods of the published benchmark, in the published catalog's order.
pub const QVAL_V1: [CatalogEntry; 21] = [
    entry(
        "direct-single",
        "direct",
        "Direct",
        "q, v",
        "text, vision",
        "-",
        Some("type = \"direct\""),
        "",
    ),
    entry(
        "direct-16",
        "direct-verif16",
        "Direct",
        "q, v",
        "text, vision",
        "num_verifications = 16 (an ablation)",
        Some("type = \"direct\", mode = \"multi\", n = 16"),
        "",
    ),
    entry(
        "direct-batched",
        "direct-batch4-packed",
        "Direct",
        "q, v",
        "text, vision",
        "prompt_batch_size = 4, packed (an ablation)",
        Some("type = \"direct\", mode = \"batched\", n = 4"),
        "",
    ),
    entry(
        "direct-sequential",
        "direct-batch8-seq",
        "Direct",
        "q, v",
        "text, vision",
        "prompt_batch_size = 8, sequential (an ablation)",
        Some("type = \"direct\", mode = \"sequential\", n = 8"),
        "",
    ),
    entry(
        "gvl",
        "gvl",
        "Direct",
        "q, v",
        "text, vision",
        "-",
        Some("type = \"gvl\""),
        "",
    ),
    entry(
        "eureka",
        "eureka",
        "Code",
        "q, v",
        "text",
        "num_samples = 8, search_iterations = 16, judge_num_points = 8",
        Some("type = \"eureka\", candidates = 8, iterations = 16"),
        "the judge sees statistics over all points, not 8 sample points",
    ),
    entry(
        "codegen",
        "codegen",
        "Code",
        "q, v",
        "text",
        "num_samples = 16",
        Some("type = \"codegen\", samples = 16"),
        "",
    ),
    entry(
        "codegen-avg",
        "codegen-mean",
        "Code",
        "q, v",
        "text",
        "the mean of codegen's 16 samples per point",
        Some("type = \"codegen-avg\", samples = 16"),
        "",
    ),
    entry(
        "verifier",
        "verifier",
        "Intrinsic",
        "q",
        "text",
        "-",
        Some("type = \"verifier\""),
        "",
    ),
    entry(
        "delta-belief",
        "delta-belief",
        "Intrinsic",
        "q",
        "text",
        "a ranking method",
        Some("type = \"delta-belief\""),
        "needs a backend with `scoring = true` (vLLM)",
    ),
    entry(
        "ranking",
        "ranking",
        "Ranking",
        "q",
        "text, vision",
        "-",
        Some("type = \"ranking\""),
        "",
    ),
    entry(
        "sdpo",
        "sdpo",
        "Self-Distillation",
        "q",
        "text",
        "a ranking method",
        Some("type = \"sdpo\""),
        "needs a backend with `scoring = true` (vLLM)",
    ),
    entry(
        "sdpo-gt",
        "sdpo-gt",
        "Self-Distillation",
        "q",
        "text",
        "a ranking method; the teacher also sees the expert rollout",
        Some("type = \"sdpo-gt\""),
        "needs a backend with `scoring = true` (vLLM)",
    ),
    entry(
        "vip",
        "vip",
        "Pre-trained",
        "q, v",
        "vision",
        "vip_resnet50, goal = trajectory end",
        None,
        "no VIP weights are packaged",
    ),
    entry(
        "liv-cos",
        "liv-cos",
        "Pre-trained",
        "q, v",
        "vision",
        "liv_clip_rn50, cosine, goal = trajectory end",
        None,
        "no LIV weights are packaged",
    ),
    entry(
        "liv-l2",
        "liv-l2",
        "Pre-trained",
        "q, v",
        "vision",
        "liv_clip_rn50, l2, goal = trajectory end",
        None,
        "no LIV weights are packaged",
    ),
    entry(
        "liv-txt",
        "liv-txt",
        "Pre-trained",
        "q, v",
        "vision",
        "liv_clip_rn50, goal text per point",
        None,
        "no LIV weights are packaged",
    ),
    entry(
        "vlm-rm-cos",
        "vle-cosine",
        "Embedding",
        "q, v",
        "vision",
        "CLIP / SigLIP, goal per point",
        Some("type = \"goal-cosine\", encoder = \"http\", modality = \"image\""),
        "pictures through an OpenAI-compatible /embeddings server (vLLM serving CLIP or SigLIP, `server = \"NAME\"` or `base_url` and `model`); text with `encoder = \"minilm\"`",
    ),
    entry(
        "vlm-rm",
        "vle-gbr",
        "Embedding",
        "q, v",
        "vision",
        "alpha = 0.5, a baseline prompt per environment",
        Some("type = \"vlm-rm\", alpha = 0.5, encoder = \"http\", modality = \"image\""),
        "pictures through an OpenAI-compatible /embeddings server (vLLM serving CLIP or SigLIP, `server = \"NAME\"` or `base_url` and `model`); text with `encoder = \"minilm\"`",
    ),
    entry(
        "vlm-sor",
        "vle-thresh",
        "Embedding",
        "q, v",
        "vision",
        "temperature = 0.07, beta = 0.5, negative goals per environment",
        Some("type = \"sor-threshold\", temperature = 0.07, threshold = 0.5, encoder = \"http\", modality = \"image\""),
        "pictures through an OpenAI-compatible /embeddings server (vLLM serving CLIP or SigLIP, `server = \"NAME\"` or `base_url` and `model`); text with `encoder = \"minilm\"`",
    ),
    entry(
        "vlm-sor-softmax",
        "vle-softmax",
        "Embedding",
        "q, v",
        "vision",
        "temperature = 0.07, negative goals per environment",
        Some("type = \"sor\", temperature = 0.07, encoder = \"http\", modality = \"image\""),
        "pictures through an OpenAI-compatible /embeddings server (vLLM serving CLIP or SigLIP, `server = \"NAME\"` or `base_url` and `model`); text with `encoder = \"minilm\"`",
    ),
];

/// The catalog as a Markdown table.
pub fn markdown() -> String {
    let mut out = String::from(
        "| method | published as | family | signals | modalities | published parameters | in a qval experiment file |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for e in &QVAL_V1 {
        let qval = match (e.qval, e.note) {
            (Some(q), "") => format!("`{q}`"),
            (Some(q), n) => format!("`{q}` ({n})"),
            (None, n) => format!("not yet: {n}"),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            e.name, e.published, e.family, e.signals, e.modalities, e.published_params, qval
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_has_21_methods_in_7_families() {
        let mut families: Vec<&str> = QVAL_V1.iter().map(|e| e.family).collect();
        families.sort();
        families.dedup();
        assert_eq!(QVAL_V1.len(), 21);
        assert_eq!(families.len(), 7, "{families:?}");
    }

    #[test]
    fn every_implemented_entry_names_a_builtin_type() {
        let types: Vec<&str> = crate::methods::builtin().into_iter().map(|(n, _)| n).collect();
        for e in QVAL_V1.iter().filter(|e| e.qval.is_some()) {
            let q = e.qval.unwrap();
            let t = q.split('"').nth(1).unwrap();
            assert!(types.contains(&t), "{}: type `{t}` is not built in", e.name);
        }
    }
}
