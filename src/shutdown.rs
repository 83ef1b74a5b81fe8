//! One shutdown path: SIGINT or SIGTERM cancels a token that every part watches.

use tokio_util::sync::CancellationToken;

/// Which signal asked for the shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Ctrl-C.
    Interrupt,
    /// What orchestrators send.
    Terminate,
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() -> Signal {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => Signal::Interrupt,
        () = term => Signal::Terminate,
    }
}

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn token_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let received = signal().await;
        // Cancel before anything else (logging included) can fail.
        t.cancel();
        tracing::info!(signal = ?received, "shutting down");
    });
    token
}
