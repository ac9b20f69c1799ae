//! Checks a configured backend end to end with one request: prints the model, the latency
//! and the parsed answer, so you can verify your setup before a long run.
//!
//! ```text
//! cargo run --release --example check_backend -- --backend vllm            # from backends.toml
//! cargo run --release --example check_backend -- --base-url http://localhost:8000/v1 --model M
//! ```

use clap::Parser;
use std::time::Instant;

use qval::methods::llm::{BackendEntry, ChatRequest, Message, Role, Sampling, extract_number, load_backends};

#[derive(Parser)]
struct Args {
    /// A backend named in the backends file.
    #[arg(long)]
    backend: Option<String>,
    /// The backends file.
    #[arg(long, default_value = "backends.toml")]
    backends: std::path::PathBuf,
    /// Or an endpoint...
    #[arg(long, requires = "model", conflicts_with = "backend")]
    base_url: Option<String>,
    /// ...and its model.
    #[arg(long)]
    model: Option<String>,
    /// ...and the variable holding its key.
    #[arg(long)]
    api_key_env: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let entry = match (&args.backend, &args.base_url, &args.model) {
        (Some(name), _, _) => load_backends(&args.backends)?
            .remove(name)
            .ok_or_else(|| anyhow::anyhow!("no backend `{name}` in {}", args.backends.display()))?,
        (None, Some(url), Some(model)) => BackendEntry {
            api_key_env: args.api_key_env.clone(),
            ..BackendEntry::new(url.clone(), model.clone())
        },
        _ => anyhow::bail!("name a backend (--backend NAME) or an endpoint (--base-url URL --model M)"),
    };
    let (backend, _) = entry.build(None, None)?;
    let question = "Current state (turn 1/30):\n@ F F F\nF H F H\nF F F H\nH F F G\n\nAction taken: right\n\n\
        In this FrozenLake grid (S start, F frozen, H hole, G goal, @ you; reward 1 at the goal, gamma = 0.9), \
        what is Q(s, a)? Answer with a number in <answer></answer> tags.";
    let req = ChatRequest {
        messages: vec![Message::text(Role::User, question)],
        sampling: Sampling::default(),
    };
    let t = Instant::now();
    let resp = backend.chat(&req).await?;
    println!("backend  {}", backend.name());
    println!("model    {}", resp.model);
    println!("latency  {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    println!(
        "tokens   {} prompt, {} completion",
        resp.usage.prompt_tokens, resp.usage.completion_tokens
    );
    match extract_number(&resp.text) {
        Ok(v) => println!("answer   {v} (the true value is {:.4})", 0.9f64.powi(5)),
        Err(e) => println!("answer   unparseable: {e}\n--- reply ---\n{}", resp.text),
    }
    Ok(())
}
