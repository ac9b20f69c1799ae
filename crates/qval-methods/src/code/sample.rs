//! Generated samples as methods: one sample's code run on points ([`CodeSample`]), their
//! mean ([`CodegenAvg`]), and how samples are asked for.

use super::group::{Member, SampleGroup, parallelism};
use super::sandbox::{CallResult, Sandbox, SandboxConfig, SandboxError};
use async_trait::async_trait;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use tokio::sync::Mutex;

use crate::llm::prompt::{Slot, adapt_closing, signal_name, system_head, system_tail};
use crate::llm::{Backend, ChatRequest, Message, PromptOptions, Role, Sampling, last_tag_code};
use qval_core::{CoreError, DenseSignalMethod, EvaluationPoint, MethodContext, Result, Signal};

/// An example of a well-behaved sample for FrozenLake: minus the shortest-path distance from
/// the agent (`@` in `next_state`) to the goal, avoiding holes. Used by the tests and the
/// benchmark, and a template for what generated code looks like.
pub const EXAMPLE_SAMPLE: &str = include_str!("frozenlake_distance.py");

/// The parameters of `signal_function` for a signal (as published: V takes the state; Q and
/// the advantage the state, the action and, when next states are shown, the next state).
pub fn params_for(signal: Signal, next_state: bool) -> &'static [&'static str] {
    match signal {
        _ if !signal.has_action() => &["state"],
        _ if next_state => &["state", "action", "next_state"],
        _ => &["state", "action"],
    }
}

/// The arguments for a point: observation texts and the action text.
pub fn args_for(point: &EvaluationPoint, signal: Signal, next_state: bool) -> Vec<Value> {
    let mut args = vec![Value::from(point.observation.text.clone())];
    if signal.has_action() {
        args.push(Value::from(point.action_text.clone()));
        if next_state {
            args.push(Value::from(point.next_observation.text.clone()));
        }
    }
    args
}

/// The code-generation prompt, as published: the codegen opener, what the value means, the
/// preset's guidance and the environment; the user prompt names the signature, what the
/// function receives, the preset's constraints and the published closing (the modules it
/// may use, which are [`ALLOWED_MODULES`](super::ALLOWED_MODULES), and the sandbox's missing introspection builtins).
pub fn codegen_messages(ctx: &MethodContext, signal: Signal, opts: &PromptOptions) -> Vec<Message> {
    let mut system = system_head(ctx, opts.preset, Slot::Codegen, signal);
    system.extend(system_tail(ctx));
    let name = signal_name(signal);
    let (input, receives) = match signal {
        _ if !signal.has_action() => ("a given state", "a text representation of the state"),
        _ if ctx.include_next_state => (
            "a given state, action, and next state",
            "text representations of the state, the action taken, and the resulting next state",
        ),
        _ => (
            "a given state and action",
            "text representations of the state and the action taken",
        ),
    };
    let params = params_for(signal, ctx.include_next_state)
        .iter()
        .map(|p| format!("{p}: str"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut user = vec![format!(
        "Write a Python function that estimates the {name} for {input}.\n\nThe function signature must be:\n\
         ```python\ndef signal_function({params}) -> float:\n```\n\nThe function receives {receives}. It should return a \
         float representing the estimated {name}."
    )];
    user.extend(opts.preset.codegen_constraints().map(String::from));
    user.push(adapt_closing(CODEGEN_CLOSING, opts.thinking));
    vec![
        Message::text(Role::System, system.join("\n\n")),
        Message::text(Role::User, user.join("\n\n")),
    ]
}

/// The published codegen closing (the same in every preset), verbatim.
pub(crate) const CODEGEN_CLOSING: &str = "You may use the `collections`, `itertools`, `json`, `math`, `re`, `statistics`, and \
`string` standard library modules. The function will run in a restricted sandbox that does not expose the \
introspection builtins `locals`, `globals`, `vars`, `dir`, `eval`, or `exec` — calling any of them raises NameError at \
runtime, so do not rely on them (in particular, do not use `locals()` to assemble return values: build any \
dictionaries with explicit literal keys). After any reasoning, output ONLY a single Python code block containing the \
function definition. No explanations or commentary after the code block.";

/// One generated sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratedSample {
    /// The sample number (also its sampling seed).
    pub index: usize,
    /// The extracted code, if there was any.
    pub source: Option<String>,
    /// Why the sample cannot be used (no code block, request failed), if so.
    pub error: Option<String>,
    /// The request for it failed in transport (connection, time-out, 429 or 5xx after the
    /// retries): its points are not final, and a rerun asks for the sample again.
    pub transient: bool,
}

impl GeneratedSample {
    /// The sample a reply gives: its last fenced code block, or why there is none.
    pub fn from_reply(
        index: usize,
        reply: std::result::Result<crate::llm::ChatResponse, crate::llm::LlmError>,
    ) -> Self {
        let transient = reply.as_ref().is_err_and(|e| e.is_transient());
        let (source, error) = match reply {
            Ok(resp) => match last_tag_code(&resp.text) {
                Some(code) => (Some(code), None),
                None => (None, Some("the reply has no ```python code block".to_string())),
            },
            Err(e) => (None, Some(format!("LLM request failed: {e}"))),
        };
        GeneratedSample {
            index,
            source,
            error,
            transient,
        }
    }
}

/// Asks `backend` for `n` samples (seeds 0..n) and extracts their code.
pub async fn generate_samples(
    backend: &dyn Backend,
    ctx: &MethodContext,
    signal: Signal,
    opts: &PromptOptions,
    n: usize,
    sampling: &Sampling,
) -> Vec<GeneratedSample> {
    let messages = codegen_messages(ctx, signal, opts);
    let reqs: Vec<ChatRequest> = (0..n)
        .map(|i| ChatRequest {
            messages: messages.clone(),
            sampling: Sampling {
                seed: Some(i as u64),
                ..sampling.clone()
            },
        })
        .collect();
    backend
        .chat_batch(&reqs)
        .await
        .into_iter()
        .enumerate()
        .map(|(index, r)| GeneratedSample::from_reply(index, r))
        .collect()
}

/// One sample as a method: its worker starts on first use; calls on one sample are
/// sequential (one worker), samples run in parallel ([`run_samples`], [`group`]).
pub struct CodeSample {
    sample: GeneratedSample,
    signal: Signal,
    config: SandboxConfig,
    name: String,
    next_state: bool,
    sandbox: Mutex<Option<std::result::Result<Sandbox, String>>>,
    /// The group this sample belongs to and its place in it, once [`group`] linked it.
    group: OnceLock<(Arc<SampleGroup>, usize)>,
}

impl CodeSample {
    /// A method running `sample` under `config`.
    pub fn new(sample: GeneratedSample, signal: Signal, config: SandboxConfig, family: &str) -> Self {
        let name = format!("{family}-{}-s{:02}", signal.to_string().to_lowercase(), sample.index);
        CodeSample {
            sample,
            signal,
            config,
            name,
            next_state: true,
            sandbox: Mutex::new(None),
            group: OnceLock::new(),
        }
    }

    /// Whether the function takes the next state (default true; false when the method's
    /// context hides next states, as the published signature then does).
    pub fn with_next_state(mut self, next_state: bool) -> Self {
        self.next_state = next_state;
        self
    }

    /// The sample (its source is kept beside its predictions).
    pub fn sample(&self) -> &GeneratedSample {
        &self.sample
    }

    /// Whether the code loaded (starting the worker if needed); `Err` says why not.
    ///
    /// # Errors
    /// The sandbox cannot run at all (no bubblewrap): the message says what to install.
    pub async fn check(&self) -> std::result::Result<std::result::Result<(), String>, SandboxError> {
        let mut guard = self.sandbox.lock().await;
        self.ensure(&mut guard).await?;
        Ok(match guard.as_ref().expect("ensured") {
            Ok(_) => Ok(()),
            Err(e) => Err(e.clone()),
        })
    }

    async fn ensure(
        &self,
        slot: &mut Option<std::result::Result<Sandbox, String>>,
    ) -> std::result::Result<(), SandboxError> {
        if slot.is_none() {
            *slot = Some(match &self.sample.source {
                None => Err(self.sample.error.clone().unwrap_or_else(|| "no code".into())),
                Some(code) => match Sandbox::new(&self.config, code, params_for(self.signal, self.next_state)).await {
                    Ok(sb) => Ok(sb),
                    Err(Ok(reason)) => Err(reason),
                    Err(Err(e)) => return Err(e),
                },
            });
        }
        Ok(())
    }

    /// Restarts of the worker so far (crashes and timeouts).
    pub async fn restarts(&self) -> usize {
        match self.sandbox.lock().await.as_ref() {
            Some(Ok(sb)) => sb.restarts(),
            _ => 0,
        }
    }

    /// Why the sample was abandoned (its calls kept timing out), if it was.
    pub async fn abandoned(&self) -> Option<String> {
        match self.sandbox.lock().await.as_ref() {
            Some(Ok(sb)) => sb.abandoned().map(String::from),
            _ => None,
        }
    }

    /// Runs this sample alone on `points`, one call after another in its worker.
    pub async fn run(&self, points: &[EvaluationPoint]) -> Vec<CallResult> {
        let mut guard = self.sandbox.lock().await;
        if let Err(e) = self.ensure(&mut guard).await {
            return vec![Err(e.to_string()); points.len()];
        }
        let mut out = Vec::with_capacity(points.len());
        for p in points {
            out.push(match guard.as_mut().expect("ensured") {
                Err(reason) => Err(reason.clone()),
                Ok(sb) => sb.call(&args_for(p, self.signal, self.next_state)).await,
            });
        }
        out
    }

    /// Stops the worker.
    pub async fn close(&self) {
        if let Some(Ok(sb)) = self.sandbox.lock().await.take() {
            sb.close().await;
        }
    }
}

#[async_trait]
impl DenseSignalMethod for CodeSample {
    fn name(&self) -> String {
        self.name.clone()
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
    /// Alone, the sample runs the points itself; in a [`group`], the first sample asked
    /// about points runs the whole group on them at once and the others find their results.
    async fn evaluate_batch(&self, points: &[EvaluationPoint], _ctx: &MethodContext) -> Vec<Result<f64>> {
        let results = match self.group.get() {
            Some((g, i)) => g.evaluate(*i, points).await,
            None => self.run(points).await,
        };
        let transient = self.sample.transient;
        results
            .into_iter()
            .map(|r| {
                r.map_err(|e| {
                    if transient {
                        CoreError::Transient(e)
                    } else {
                        CoreError::Method(e.into())
                    }
                })
            })
            .collect()
    }
}

/// codegen-avg: per point, the mean of the samples that give a number; the samples run
/// [`parallelism`] at a time.
pub struct CodegenAvg {
    samples: Vec<Arc<CodeSample>>,
    name: String,
}

impl CodegenAvg {
    /// The average of `samples`.
    pub fn new(samples: Vec<Arc<CodeSample>>, signal: Signal) -> Self {
        CodegenAvg {
            samples,
            name: format!("codegen-avg-{}", signal.to_string().to_lowercase()),
        }
    }
}

#[async_trait]
impl DenseSignalMethod for CodegenAvg {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn signal(&self) -> Signal {
        self.samples.first().map(|s| s.signal).unwrap_or(Signal::Q)
    }
    async fn evaluate(&self, point: &EvaluationPoint, ctx: &MethodContext) -> Result<f64> {
        self.evaluate_batch(std::slice::from_ref(point), ctx)
            .await
            .pop()
            .expect("one result")
    }
    async fn evaluate_batch(&self, points: &[EvaluationPoint], _ctx: &MethodContext) -> Vec<Result<f64>> {
        let per_sample = run_samples(&self.samples, points, parallelism()).await;
        (0..points.len())
            .map(|i| {
                let ok: Vec<f64> = per_sample.iter().filter_map(|r| r[i].as_ref().ok().copied()).collect();
                if ok.is_empty() {
                    let why = format!("none of the {} samples gave a number", self.samples.len());
                    // Not final when a sample is missing for a transport failure.
                    Err(if self.samples.iter().any(|s| s.sample.transient) {
                        CoreError::Transient(why)
                    } else {
                        CoreError::Method(why.into())
                    })
                } else {
                    Ok(ok.iter().sum::<f64>() / ok.len() as f64)
                }
            })
            .collect()
    }
}

/// Runs every sample on `points`, `concurrency` samples at a time (at least 1); the
/// results of sample `i` are at `i`, in the order of `points`.
pub async fn run_samples(
    samples: &[Arc<CodeSample>],
    points: &[EvaluationPoint],
    concurrency: usize,
) -> Vec<Vec<CallResult>> {
    let owned: Vec<Arc<CodeSample>> = samples.to_vec();
    futures::stream::iter(owned)
        .map(|s| async move { s.run(points).await })
        .buffered(concurrency.max(1))
        .collect()
        .await
}

/// Links `samples` into one group and returns them in order: when a member is asked about
/// points it has no result for, it runs itself and every later member on them at once
/// ([`parallelism`] at a time) and keeps the later members' results until they are asked.
/// A caller going through the members in order (as the runner does) thus runs them all
/// concurrently. Members asked about other points, or alone, simply run them.
pub fn group(samples: Vec<CodeSample>) -> Vec<Arc<CodeSample>> {
    let members: Vec<Arc<CodeSample>> = samples.into_iter().map(Arc::new).collect();
    let shared = Arc::new(SampleGroup::new(
        members
            .iter()
            .map(|m| Arc::downgrade(m) as std::sync::Weak<dyn Member>)
            .collect(),
        parallelism(),
    ));
    for (i, m) in members.iter().enumerate() {
        // A sample is linked once: a second `group` of the same sample cannot happen, as
        // `group` takes the samples by value.
        let _ = m.group.set((shared.clone(), i));
    }
    members
}

#[async_trait]
impl Member for CodeSample {
    async fn run(&self, points: &[EvaluationPoint]) -> Vec<CallResult> {
        CodeSample::run(self, points).await
    }
}
