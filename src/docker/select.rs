//! Which container serves a port: the matching rules (pure).

use std::fmt::Write as _;

use super::DockerError;

/// A label that names the port a container serves, for containers the other
/// rules cannot place (`docker run --label llm-loadtest.target-port=8000`).
pub const TARGET_PORT_LABEL: &str = "llm-loadtest.target-port";

/// vLLM's default `--port`.
const VLLM_DEFAULT_PORT: u16 = 8000;

/// What the container list says about one container.
#[derive(Debug, Clone, Default)]
pub(crate) struct Candidate {
    pub id: String,
    pub name: String,
    pub image: String,
    pub running: bool,
    /// `running`, `exited`, ...
    pub state: String,
    pub host_network: bool,
    /// Host ports published (`-p HOST:CONTAINER`).
    pub published: Vec<u16>,
    /// Value of the `llm-loadtest.target-port` label.
    pub port_label: Option<String>,
    /// The command line as the engine shows it (`Path Args...` joined by spaces).
    pub command: String,
}

/// How strongly a container matched; lower is stronger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Tier {
    Label,
    Published,
    PortFlag,
    VllmDefault,
    VllmImage,
}

impl Tier {
    fn rule(self, port: u16) -> String {
        match self {
            Tier::Label => format!("label {TARGET_PORT_LABEL}={port}"),
            Tier::Published => format!("published port {port}"),
            Tier::PortFlag => format!("--port {port} in the command"),
            Tier::VllmDefault => format!("vllm command without --port (default {VLLM_DEFAULT_PORT})"),
            Tier::VllmImage => "image name contains \"vllm\" (host network, port not in the command)".to_string(),
        }
    }
}

/// The value of the last `--port N` / `--port=N` in the command (argparse: the last one wins).
pub(crate) fn port_flag(command: &str) -> Option<u16> {
    let mut found = None;
    let mut tokens = command.split_whitespace().map(|t| t.trim_matches(|c| c == '"' || c == '\''));
    while let Some(t) = tokens.next() {
        if t == "--port" {
            if let Some(v) = tokens.next() {
                found = v.parse().ok().or(found);
            }
        } else if let Some(v) = t.strip_prefix("--port=") {
            found = v.parse().ok().or(found);
        }
    }
    found
}

/// The command starts vLLM's OpenAI server (`vllm serve`, `python -m vllm.entrypoints.openai.api_server`).
pub(crate) fn runs_vllm(command: &str) -> bool {
    command.split_whitespace().any(|t| {
        let base = t.rsplit('/').next().unwrap_or(t);
        base == "vllm" || t.contains("vllm.entrypoints") || base == "api_server.py" || base.ends_with(".api_server")
    })
}

fn tier(c: &Candidate, port: u16) -> Option<Tier> {
    if let Some(label) = &c.port_label {
        return (label.trim().parse::<u16>().ok() == Some(port)).then_some(Tier::Label);
    }
    if c.published.contains(&port) {
        return Some(Tier::Published);
    }
    if !c.host_network {
        return None;
    }
    match port_flag(&c.command) {
        Some(p) if p == port => Some(Tier::PortFlag),
        Some(_) => None,
        // vLLM without --port listens on its default, whatever the image is called.
        None if runs_vllm(&c.command) => (port == VLLM_DEFAULT_PORT).then_some(Tier::VllmDefault),
        None if c.image.to_ascii_lowercase().contains("vllm") => Some(Tier::VllmImage),
        None => None,
    }
}

/// One line describing a container for error messages.
fn describe(c: &Candidate) -> String {
    let mut s = format!("{} ({}, {}", c.name, c.image, c.state);
    if c.host_network {
        s.push_str(", host network");
        match port_flag(&c.command) {
            Some(p) => {
                let _ = write!(s, ", --port {p}");
            }
            None => s.push_str(", no --port"),
        }
    } else if c.published.is_empty() {
        s.push_str(", no published ports");
    } else {
        let ports: Vec<String> = c.published.iter().map(u16::to_string).collect();
        let _ = write!(s, ", publishes {}", ports.join(","));
    }
    if let Some(l) = &c.port_label {
        let _ = write!(s, ", label {TARGET_PORT_LABEL}={l}");
    }
    s.push(')');
    s
}

const LISTED: usize = 10;

fn list(cs: &[&Candidate]) -> String {
    let mut parts: Vec<String> = cs.iter().take(LISTED).map(|c| describe(c)).collect();
    if cs.len() > LISTED {
        parts.push(format!("and {} more", cs.len() - LISTED));
    }
    parts.join("; ")
}

/// Picks the one container serving `port`; returns its index and the rule.
pub(crate) fn select(cs: &[Candidate], port: u16) -> Result<(usize, String), DockerError> {
    let matched: Vec<(usize, Tier)> =
        cs.iter().enumerate().filter_map(|(i, c)| tier(c, port).map(|t| (i, t))).collect();
    let best_among = |running: bool| {
        let best = matched.iter().filter(|(i, _)| cs[*i].running == running).map(|(_, t)| *t).min()?;
        let idx: Vec<usize> =
            matched.iter().filter(|(i, t)| cs[*i].running == running && *t == best).map(|(i, _)| *i).collect();
        Some((best, idx))
    };
    if let Some((best, idx)) = best_among(true) {
        return match idx.as_slice() {
            [one] => Ok((*one, best.rule(port))),
            _ => {
                let those: Vec<&Candidate> = idx.iter().map(|&i| &cs[i]).collect();
                Err(DockerError::Ambiguous(format!(
                    "{} running containers match port {port} by {}: {}; name one with --container",
                    those.len(),
                    best.rule(port),
                    list(&those)
                )))
            }
        };
    }
    if let Some((best, idx)) = best_among(false) {
        let those: Vec<&Candidate> = idx.iter().map(|&i| &cs[i]).collect();
        return Err(DockerError::NotRunning(format!(
            "matched port {port} by {} but not running: {}",
            best.rule(port),
            list(&those)
        )));
    }
    let running: Vec<&Candidate> = cs.iter().filter(|c| c.running).collect();
    if running.is_empty() {
        return Err(DockerError::NotFound(format!(
            "no running container serves port {port}: no containers are running"
        )));
    }
    Err(DockerError::NotFound(format!(
        "no running container serves port {port} (published port, --port in a host-network container's command, vllm image, or label {TARGET_PORT_LABEL}={port}); seen: {}; name one with --container",
        list(&running)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str, image: &str, host: bool, published: &[u16], command: &str) -> Candidate {
        Candidate {
            id: format!("id-{name}"),
            name: name.to_string(),
            image: image.to_string(),
            running: true,
            state: "running".to_string(),
            host_network: host,
            published: published.to_vec(),
            port_label: None,
            command: command.to_string(),
        }
    }

    fn picked(cs: &[Candidate], port: u16) -> Result<(String, String), DockerError> {
        select(cs, port).map(|(i, rule)| (cs[i].name.clone(), rule))
    }

    #[test]
    fn port_flags_in_both_spellings_last_wins() {
        assert_eq!(port_flag("vllm serve m --port 8011"), Some(8011));
        assert_eq!(port_flag("python3 -m vllm.entrypoints.openai.api_server --port=8012 --host 0.0.0.0"), Some(8012));
        assert_eq!(port_flag("x --port 1 --port 2"), Some(2));
        assert_eq!(port_flag("x --port nope"), None);
        assert_eq!(port_flag("x --portal 3 --ports=4"), None);
        assert_eq!(port_flag("/bin/sh -c 'vllm serve m --port 9000'"), Some(9000));
        assert!(runs_vllm("vllm serve facebook/opt-125m"));
        assert!(runs_vllm("/usr/bin/python3 -m vllm.entrypoints.openai.api_server --model m"));
        assert!(!runs_vllm("/llm-loadtest sim --port 8000"));
    }

    #[test]
    fn published_port_beats_everything_but_the_label() {
        let cs = [
            c("pub", "vllm/vllm-openai", false, &[8000], "vllm serve m"),
            c("host", "vllm/vllm-openai", true, &[], "vllm serve m"),
        ];
        assert_eq!(picked(&cs, 8000), Ok(("pub".into(), "published port 8000".into())));
        let mut labelled = cs.clone();
        labelled[1].port_label = Some("8000".into());
        assert_eq!(picked(&labelled, 8000), Ok(("host".into(), format!("label {TARGET_PORT_LABEL}=8000"))));
    }

    #[test]
    fn host_network_rules() {
        let cs = [
            c("a", "vllm/vllm-openai", true, &[], "vllm serve m --port 8011"),
            c("b", "llm-loadtest:local", true, &[], "/usr/local/bin/llm-loadtest sim --port 8012 --host 127.0.0.1"),
            c("c", "vllm/vllm-openai:v0.6", true, &[], "python3 -m vllm.entrypoints.openai.api_server --model m"),
            c("d", "busybox", false, &[], "sh -c 'x --port 8013'"),
        ];
        assert_eq!(picked(&cs, 8011), Ok(("a".into(), "--port 8011 in the command".into())));
        assert_eq!(picked(&cs, 8012), Ok(("b".into(), "--port 8012 in the command".into())));
        assert_eq!(picked(&cs, 8000).map(|p| p.0), Ok("c".into()));
        // A bridge-network container's own --port is not a host port.
        assert_eq!(picked(&cs, 8013).map_err(|e| e.as_label()), Err("not_found"));
    }

    #[test]
    fn vllm_image_is_the_last_resort_and_a_contradicting_port_excludes() {
        let cs = [c("w", "myorg/vllm-wrapper", true, &[], "/start.sh")];
        assert_eq!(picked(&cs, 9000).map(|p| p.0), Ok("w".into()));
        let cs = [c("w", "myorg/vllm-wrapper", true, &[], "/start.sh --port 9001")];
        assert_eq!(picked(&cs, 9000).map_err(|e| e.as_label()), Err("not_found"));
        let mut cs = [c("w", "myorg/vllm-wrapper", true, &[], "/start.sh")];
        cs[0].port_label = Some("7000".into());
        assert_eq!(picked(&cs, 9000).map_err(|e| e.as_label()), Err("not_found"));
    }

    #[test]
    fn ambiguous_not_running_and_not_found_list_what_was_seen() {
        let cs = [
            c("x1", "vllm/vllm-openai", true, &[], "vllm serve m"),
            c("x2", "vllm/vllm-openai", true, &[], "vllm serve n"),
        ];
        let e = select(&cs, 8000).err().unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(e.as_label(), "ambiguous");
        assert!(e.to_string().contains("x1") && e.to_string().contains("x2"), "{e}");

        let mut stopped = [c("old", "img", false, &[8000], "serve")];
        stopped[0].running = false;
        stopped[0].state = "exited".into();
        let e = select(&stopped, 8000).err().unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(e.as_label(), "not_running");
        assert!(e.to_string().contains("old (img, exited"), "{e}");

        let e = select(&[c("other", "redis", false, &[6379], "redis-server")], 8000)
            .err()
            .unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(e.as_label(), "not_found");
        assert!(e.to_string().contains("other (redis, running, publishes 6379)"), "{e}");
        let e = select(&[], 8000).err().unwrap_or_else(|| panic!("expected an error"));
        assert!(e.to_string().contains("no containers are running"), "{e}");
    }
}
