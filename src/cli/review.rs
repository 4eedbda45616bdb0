//! `repowire review …`: ask for reviews, see what you owe, mark them.

use super::{CmdResult, Ctx, Failure, term};
use crate::api::{QueueEntry, ReviewInfo, ReviewRefReq, ReviewRequestReq};
use crate::client::Client;
use crate::core::ErrorCode;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Ask for a review of REF (a PR URL or any ref); the circle's persona
    /// picks the reviewer (never the author), who is told.
    Request(RequestArgs),
    /// What a peer owes: review-needed, re-review-suggested, none-needed, closed.
    Queue {
        /// Whose queue (default: yours).
        #[arg(long)]
        peer: Option<String>,
    },
    /// One review item with its reviewers.
    Show {
        #[arg(value_name = "REF")]
        reference: String,
    },
    /// The author pushed: a new head re-opens the review.
    Update(UpdateArgs),
    /// Record your review (mark_reviewed); the author is told.
    Mark(MarkArgs),
    /// Merged or abandoned: nothing more is owed.
    Close {
        #[arg(value_name = "REF")]
        reference: String,
    },
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    #[arg(value_name = "REF")]
    reference: String,
    /// The head commit (or give --repo to read it with git).
    #[arg(long)]
    sha: Option<String>,
    /// A local git repository where REF is a branch: read its head sha.
    #[arg(long)]
    repo: Option<PathBuf>,
    /// The author (default: you).
    #[arg(long)]
    author: Option<String>,
    #[arg(long)]
    title: Option<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[arg(value_name = "REF")]
    reference: String,
    #[arg(long)]
    sha: Option<String>,
    #[arg(long)]
    repo: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MarkArgs {
    #[arg(value_name = "REF")]
    reference: String,
    /// The sha you reviewed (default: the current head).
    #[arg(long)]
    sha: Option<String>,
    /// approve, changes or comment.
    #[arg(long, default_value = "comment")]
    verdict: String,
    #[arg(long)]
    notes: Option<String>,
}

/// The head sha: given, or read from a local repository with git.
fn head(sha: Option<String>, repo: Option<PathBuf>, reference: &str) -> Result<String, Failure> {
    if let Some(s) = sha {
        return Ok(s);
    }
    let Some(repo) = repo else {
        return Err(Failure::usage(
            "give --sha SHA, or --repo PATH to read the head of REF with git",
        ));
    };
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{reference}^{{commit}}"))
        .output()
        .map_err(|e| Failure::new(ErrorCode::Git, format!("could not run git: {e}")).exit(5))?;
    if !out.status.success() {
        return Err(Failure::new(
            ErrorCode::Git,
            format!(
                "{reference:?} is not a branch or commit in {}",
                repo.display()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn review_text(r: &ReviewInfo) -> String {
    let mut s = format!(
        "{} ({}) by {} at {} [{}]",
        term::field(&r.reference),
        r.review_id,
        r.author,
        term::field(&r.head_sha),
        r.state
    );
    if r.reviewers.is_empty() {
        s.push_str("\n  no reviewer yet (routing retries in the background)");
    }
    for x in &r.reviewers {
        s.push_str(&format!(
            "\n  {:<16} {:<20} {}",
            x.reviewer,
            x.my_action,
            term::field(x.verdict.as_deref().unwrap_or(""))
        ));
    }
    s
}

fn queue_line(q: &QueueEntry) -> String {
    format!(
        "{:<20} {} (by {}, head {})",
        q.my_action,
        term::field(&q.reference),
        q.author,
        term::field(&q.head_sha)
    )
}

impl ReviewCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        let c = ctx.client();
        match self {
            ReviewCmd::Request(a) => request(ctx, &c, a).await,
            ReviewCmd::Queue { peer } => queue(ctx, &c, peer).await,
            ReviewCmd::Show { reference } => show(ctx, &c, reference).await,
            ReviewCmd::Update(a) => update(ctx, &c, a).await,
            ReviewCmd::Mark(a) => mark(ctx, &c, a).await,
            ReviewCmd::Close { reference } => close(ctx, &c, reference).await,
        }
    }
}

async fn request(ctx: &Ctx, c: &Client, a: RequestArgs) -> CmdResult {
    let RequestArgs {
        reference,
        sha,
        repo,
        author,
        title,
        tags,
    } = a;
    let head_sha = head(sha, repo, &reference)?;
    let req = ReviewRequestReq {
        reference,
        head_sha,
        title,
        author,
        tags: (!tags.is_empty()).then_some(tags),
    };
    let r = c.request_review(&req).await?;
    ctx.out(&r, |r| {
        format!(
            "{}\nrouted by {}: {}",
            review_text(&r.review),
            r.persona.as_deref().unwrap_or("the built-in policy"),
            serde_json::to_string(&r.route).unwrap_or_default()
        )
    });
    Ok(())
}

async fn queue(ctx: &Ctx, c: &Client, peer: Option<String>) -> CmdResult {
    let q = c.review_queue(peer.as_deref()).await?;
    ctx.out(&q, |q| {
        if q.is_empty() {
            "nothing to review".into()
        } else {
            q.iter().map(queue_line).collect::<Vec<_>>().join("\n")
        }
    });
    Ok(())
}

async fn show(ctx: &Ctx, c: &Client, reference: String) -> CmdResult {
    let r = c.review(&reference).await?;
    ctx.out(&r, review_text);
    Ok(())
}

async fn update(ctx: &Ctx, c: &Client, a: UpdateArgs) -> CmdResult {
    let UpdateArgs {
        reference,
        sha,
        repo,
    } = a;
    let sha = Some(head(sha, repo, &reference)?);
    let r = c
        .update_review(&ReviewRefReq {
            reference,
            sha,
            ..Default::default()
        })
        .await?;
    ctx.out(&r, review_text);
    Ok(())
}

async fn mark(ctx: &Ctx, c: &Client, a: MarkArgs) -> CmdResult {
    let MarkArgs {
        reference,
        sha,
        verdict,
        notes,
    } = a;
    let r = c
        .mark_review(&ReviewRefReq {
            reference,
            sha,
            verdict: Some(verdict),
            notes,
        })
        .await?;
    ctx.out(&r, review_text);
    Ok(())
}

async fn close(ctx: &Ctx, c: &Client, reference: String) -> CmdResult {
    let r = c.close_review(&reference).await?;
    ctx.out(&r, review_text);
    Ok(())
}
