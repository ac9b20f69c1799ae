//! Reading answers: thinking blocks stripped, then the `<answer>` tag, then the last number.

use regex::Regex;
use std::sync::OnceLock;

fn number_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?").expect("a valid regex"))
}

fn tag_re(tag: &str) -> Regex {
    Regex::new(&format!(r"(?s)<{tag}>(.*?)</{tag}>")).expect("a valid regex")
}

/// The text without reasoning: `<think>...</think>` and `<thinking>...</thinking>` blocks
/// removed, and everything up to a stray closing `</think>` (some servers drop the opening
/// tag).
pub fn strip_thinking(text: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"(?s)<think(?:ing)?>.*?</think(?:ing)?>").expect("a valid regex"));
    let t = re.replace_all(text, "");
    let t = match t.rfind("</think>") {
        Some(i) => &t[i + "</think>".len()..],
        None => &t[..],
    };
    t.to_string()
}

/// The content of the last `<tag>...</tag>`, if any.
pub fn last_tag(text: &str, tag: &str) -> Option<String> {
    tag_re(tag).captures_iter(text).last().map(|c| c[1].trim().to_string())
}

/// The number an answer gives: the content of the last `<answer>` tag if present, else the
/// last number in the text (after stripping thinking). `Err` says why nothing parsed.
///
/// ```
/// use qval_llm::extract_number;
/// assert_eq!(extract_number("<think>maybe 3</think> I'd say <answer>0.81</answer>"), Ok(0.81));
/// assert_eq!(extract_number("The value is about 0.5, maybe 0.6."), Ok(0.6));
/// assert!(extract_number("<answer>high</answer>").is_err());
/// ```
pub fn extract_number(text: &str) -> Result<f64, String> {
    let body = strip_thinking(text);
    let (scope, what) = match last_tag(&body, "answer") {
        Some(a) => (a, "the <answer> tag"),
        None => (body.clone(), "the answer"),
    };
    let m = number_re()
        .find_iter(&scope)
        .last()
        .ok_or_else(|| format!("no number in {what}: {:?}", short(&scope)))?;
    m.as_str()
        .parse::<f64>()
        .map_err(|e| format!("unreadable number {:?}: {e}", m.as_str()))
        .and_then(|v| {
            if v.is_finite() {
                Ok(v)
            } else {
                Err(format!("non-finite number {:?}", m.as_str()))
            }
        })
}

/// Exactly `k` comma-separated numbers in the answer (direct-batched).
pub fn extract_list(text: &str, k: usize) -> Result<Vec<f64>, String> {
    let body = strip_thinking(text);
    let scope = last_tag(&body, "answer").unwrap_or_else(|| {
        body.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    });
    let items: Vec<&str> = scope.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if items.len() != k {
        return Err(format!(
            "expected a list of exactly {k} numbers, got {} items: {:?}",
            items.len(),
            short(&scope)
        ));
    }
    items
        .iter()
        .map(|s| {
            let m = number_re()
                .find(s)
                .filter(|m| m.as_str().len() == s.len() || s.trim_end_matches('.') == m.as_str());
            m.and_then(|m| m.as_str().parse::<f64>().ok())
                .ok_or_else(|| format!("`{s}` is not a number"))
        })
        .collect()
}

/// The last comma-separated permutation of 1..=k in the answer (ranking), best first, as
/// 0-based indices.
pub fn extract_permutation(text: &str, k: usize) -> Result<Vec<usize>, String> {
    let body = strip_thinking(text);
    let scope = last_tag(&body, "answer").unwrap_or(body);
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"\d+(?:\s*,\s*\d+)+").expect("a valid regex"));
    for m in re.find_iter(&scope).collect::<Vec<_>>().into_iter().rev() {
        let nums: Vec<usize> = m.as_str().split(',').filter_map(|s| s.trim().parse().ok()).collect();
        let mut seen = vec![false; k + 1];
        if nums.len() == k
            && nums
                .iter()
                .all(|&n| (1..=k).contains(&n) && !std::mem::replace(&mut seen[n], true))
        {
            return Ok(nums.into_iter().map(|n| n - 1).collect());
        }
    }
    Err(format!("no permutation of 1..{k} in {:?}", short(&scope)))
}

/// The code of the last fenced block (```python ... ``` or ``` ... ```), thinking stripped.
pub fn last_tag_code(text: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new(r"(?s)```(?:python|py)?[ \t]*\n(.*?)```").expect("a valid regex"));
    let body = strip_thinking(text);
    re.captures_iter(&body)
        .last()
        .map(|c| c[1].to_string())
        .filter(|c| !c.trim().is_empty())
}

/// The action an agent's reply names: the `<action>` tag, else the `<answer>` tag, else the
/// whole reply (thinking stripped), trimmed.
pub fn extract_action(text: &str) -> String {
    let body = strip_thinking(text);
    last_tag(&body, "action")
        .or_else(|| last_tag(&body, "answer"))
        .unwrap_or_else(|| body.trim().to_string())
}

/// The reasoning an agent's reply states for its action, as published (`extract_thought`):
/// the last `<thought>...</thought>` (any case), else the last `Thought: ...` up to a line
/// starting `Action:` or the end; trimmed, `None` when there is none or it is empty.
///
/// ```
/// use qval_llm::extract_thought;
/// assert_eq!(extract_thought("<thought> go right </thought>\n<action>right</action>").as_deref(), Some("go right"));
/// assert_eq!(extract_thought("Thought: the hole is left\nAction: down").as_deref(), Some("the hole is left"));
/// assert_eq!(extract_thought("down"), None);
/// ```
pub fn extract_thought(text: &str) -> Option<String> {
    static TAG: OnceLock<Regex> = OnceLock::new();
    static CLASSIC: OnceLock<Regex> = OnceLock::new();
    let tag = TAG.get_or_init(|| Regex::new(r"(?is)<thought>(.*?)</thought>").expect("a valid regex"));
    let classic = CLASSIC.get_or_init(|| Regex::new(r"(?is)Thought:\s*(.*?)(?:\nAction:|\z)").expect("a valid regex"));
    let last = |re: &Regex| re.captures_iter(text).last().map(|c| c[1].trim().to_string());
    last(tag).or_else(|| last(classic)).filter(|t| !t.is_empty())
}

fn short(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= 120 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(120).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lists_permutations_and_actions() {
        assert_eq!(extract_number("<answer> -1.5e-2 </answer>"), Ok(-0.015));
        assert_eq!(extract_number("Q = .5"), Ok(0.5));
        assert_eq!(extract_number("first 0.1 then <answer>0.7</answer> and 9"), Ok(0.7));
        assert_eq!(extract_number("reasoning</think>final 0.3"), Ok(0.3));
        let e = extract_number("I cannot tell.").unwrap_err();
        assert!(e.contains("no number"), "{e}");
        assert_eq!(
            extract_list("<answer>0.1, 0.2,0.3 , 1</answer>", 4),
            Ok(vec![0.1, 0.2, 0.3, 1.0])
        );
        assert!(
            extract_list("<answer>0.1, 0.2, 0.3</answer>", 4)
                .unwrap_err()
                .contains("exactly 4")
        );
        assert!(
            extract_list("<answer>0.1, high, 0.3, 0.4</answer>", 4)
                .unwrap_err()
                .contains("high")
        );
        assert_eq!(
            extract_permutation("maybe 1, 2, 3, 4 ... no: <answer>3, 1, 4, 2</answer>", 4),
            Ok(vec![2, 0, 3, 1])
        );
        assert_eq!(
            extract_permutation("order: 2,1,3,4. Final: 4, 3, 2, 1", 4),
            Ok(vec![3, 2, 1, 0])
        );
        assert!(extract_permutation("<answer>1, 1, 2, 3</answer>", 4).is_err());
        assert_eq!(extract_action("<think>hmm</think><action> ls -la </action>"), "ls -la");
        assert_eq!(extract_action(" right \n"), "right");
    }
}
