//! Shows the exact prompts the LLM methods send for a point, without calling a model.
//!
//! ```text
//! cargo run --release --example quickstart
//! cargo run --release --example preview_prompts -- runs/quickstart 3
//! ```

use qval::io::{Kind, read_jsonl};
use qval::methods::llm::prompt::{direct_messages, render};
use qval::methods::prompting::{Ranking, expand_candidates};
use qval::stage::layout;
use qval::{Environment, EvaluationPoint, MethodContext, Signal};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let run = std::path::PathBuf::from(args.next().unwrap_or_else(|| "runs/quickstart".into()));
    let index: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let (_, points) = read_jsonl::<EvaluationPoint>(&layout::points(&run), Kind::Points)?;
    let point = points
        .get(index)
        .ok_or_else(|| anyhow::anyhow!("{} has {} points", run.display(), points.len()))?;
    let env = qval::envs::frozenlake::FrozenLake::builder().preset_8x8().build()?;
    let ctx = MethodContext::from_spec(env.spec());
    println!("##### direct-single, point {}\n", point.id);
    println!(
        "{}\n",
        render(&direct_messages(point, &ctx, Signal::Q, &Default::default()))
    );
    let candidates = expand_candidates(&env, std::slice::from_ref(point), 0)?;
    let ranking = Ranking::new(std::sync::Arc::new(NoBackend), &candidates, Default::default());
    println!("##### ranking, state {}\n", point.id);
    println!("{}", render(&ranking.messages(&candidates, &ctx)));
    Ok(())
}

/// Previews never call a model.
struct NoBackend;

#[qval::async_trait]
impl qval::methods::llm::Backend for NoBackend {
    fn name(&self) -> String {
        "preview".into()
    }
    fn capabilities(&self) -> qval::methods::llm::Capabilities {
        qval::methods::llm::Capabilities {
            logprobs: false,
            images: false,
        }
    }
    async fn chat(
        &self,
        _: &qval::methods::llm::ChatRequest,
    ) -> Result<qval::methods::llm::ChatResponse, qval::methods::llm::LlmError> {
        Err(qval::methods::llm::LlmError::Unsupported(
            "previews make no requests".into(),
        ))
    }
}
