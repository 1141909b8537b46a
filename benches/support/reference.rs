//! The smallest OpenAI-compatible streaming server: `POST /v1/chat/completions` answers every
//! request with `tokens` chat chunks (the first at once, the rest `itl` apart), a usage chunk
//! and `[DONE]`, in vLLM's chunk layout. No engine, no metrics, no logs: a reference whose own
//! cost is as small as a server's can be, so that two clients beside it are measured, not it.
//! It runs on its own two-thread runtime in this process, which does nothing else meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::Response;
use axum::routing::post;

struct Plan {
    tokens: u32,
    itl: Duration,
    next_id: AtomicU64,
}

pub struct ReferenceServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReferenceServer {
    pub fn start(port: u16, tokens: u32, itl: Duration) -> ReferenceServer {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let plan = Arc::new(Plan { tokens, itl, next_id: AtomicU64::new(0) });
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                // As uvicorn does: without TCP_NODELAY a chunk written while the previous one is
                // unacknowledged waits for the client's delayed ACK (about 40 ms on Linux).
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
                    let _ = tcp.set_nodelay(true);
                });
                let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(plan);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        ReferenceServer { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn chat(State(plan): State<Arc<Plan>>, _request: Bytes) -> Response {
    let id = plan.next_id.fetch_add(1, Ordering::Relaxed);
    let head = format!(
        "data: {{\"id\":\"chatcmpl-{id}\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"sim-model\",\"choices\":["
    );
    let frames = futures_util::stream::unfold(0u32, move |i| {
        let plan = Arc::clone(&plan);
        let head = head.clone();
        async move {
            if i >= plan.tokens {
                return None;
            }
            if i > 0 && !plan.itl.is_zero() {
                tokio::time::sleep(plan.itl).await;
            }
            let last = i + 1 == plan.tokens;
            let finish = if last { "\"length\"" } else { "null" };
            let mut frame = format!(
                "{head}{{\"index\":0,\"delta\":{{\"content\":\" t{i}\"}},\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
            );
            if last {
                let tokens = plan.tokens;
                frame.push_str(&format!(
                    "{head}],\"usage\":{{\"prompt_tokens\":32,\"total_tokens\":{},\"completion_tokens\":{tokens}}}}}\n\ndata: [DONE]\n\n",
                    32 + tokens
                ));
            }
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(frame)), i + 1))
        }
    });
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream; charset=utf-8")
        .body(Body::from_stream(frames))
        .unwrap()
}
