//! `weftctl logs`: a pod's log, streamed as the server sends it.

use anyhow::Result;
use futures::StreamExt;
use weft_client::LogParams;

use crate::cli::LogsArgs;
use crate::{Ctx, Outcome};

/// Accepts `web-0` and `pod/web-0`, as kubectl does.
pub fn pod_name(arg: &str) -> &str {
    match arg.split_once('/') {
        Some(("pod" | "pods" | "po", name)) => name,
        _ => arg,
    }
}

pub async fn run(ctx: &mut Ctx<'_>, args: &LogsArgs) -> Result<Outcome> {
    let params = LogParams {
        container: args.container.clone(),
        follow: args.follow,
    };
    let mut stream = ctx
        .client
        .logs(&ctx.namespace, pod_name(&args.pod), &params)
        .await?;
    while let Some(chunk) = stream.next().await {
        ctx.out.write_all(&chunk?)?;
        // Followed logs are read by people as they happen.
        ctx.out.flush()?;
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_prefix_is_optional() {
        assert_eq!(pod_name("web-0"), "web-0");
        assert_eq!(pod_name("pod/web-0"), "web-0");
        assert_eq!(pod_name("po/web-0"), "web-0");
    }
}
