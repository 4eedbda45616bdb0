//! Ids are parsed once, at the edge: a malformed id, or a well-formed id of
//! another kind, is refused with the code of the kind expected (the code a
//! lookup of it would give) and a message naming that kind and its prefix.

use crate::support::*;
use repowire::api::{AskManyReq, AskReq};
use repowire::client::ClientError;
use repowire::core::ErrorCode;

/// The coded error of `r`, and its message.
fn refusal<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (ErrorCode, String) {
    match r {
        Err(ClientError::Api(e)) => (e.code, e.message),
        other => panic!("expected a coded error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_id_of_the_wrong_kind_is_refused_naming_the_kind_expected() {
    let d = Daemon::start(&[]);
    let ann = d.peer("ann", None).await;
    d.peer("bob", None).await;
    let sent = ann
        .ask(&AskReq {
            to: "bob".into(),
            text: "q".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ask_id = sent.ask.correlation_id.clone();
    let group = ann
        .ask_many(&AskManyReq {
            to: vec!["bob".into()],
            text: "all?".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .parent_id;

    // Each a well-formed id, of the wrong kind.
    let cases = [
        (
            refusal(ann.get_ask(&sent.delivery_id).await),
            ErrorCode::UnknownAsk,
            "ask id (ask-…)",
        ),
        (
            refusal(ann.get_ask(&group).await),
            ErrorCode::UnknownAsk,
            "ask id (ask-…)",
        ),
        (
            refusal(ann.job(&ask_id).await),
            ErrorCode::NotFound,
            "job id (job-…)",
        ),
        (
            refusal(ann.retry_job(&ask_id).await),
            ErrorCode::NotFound,
            "job id (job-…)",
        ),
        (
            refusal(ann.schedule(&ask_id).await),
            ErrorCode::NotFound,
            "schedule id (sch-…)",
        ),
        (
            refusal(ann.delete_schedule(&ask_id).await),
            ErrorCode::NotFound,
            "schedule id (sch-…)",
        ),
        (
            refusal(ann.ask_many_result(&ask_id).await),
            ErrorCode::NotFound,
            "ask group id (askm-…)",
        ),
        (
            refusal(ann.confirm(vec![ask_id.clone()]).await),
            ErrorCode::BadRequest,
            "delivery id (dlv-…)",
        ),
        (
            refusal(
                ann.ask(&AskReq {
                    to: "bob".into(),
                    text: "again".into(),
                    reply_to: Some(group.clone()),
                    ..Default::default()
                })
                .await,
            ),
            ErrorCode::UnknownAsk,
            "ask id (ask-…)",
        ),
    ];
    for (i, ((code, message), want_code, names)) in cases.into_iter().enumerate() {
        assert_eq!(code, want_code, "case {i}: {message}");
        assert!(message.contains(names), "case {i}: {message}");
    }

    // Plain garbage is refused the same way; the right kind still works.
    let (code, message) = refusal(ann.job("nonsense").await);
    assert_eq!(code, ErrorCode::NotFound);
    assert!(
        message.contains("\"nonsense\" is not a valid job id"),
        "{message}"
    );
    assert_eq!(ann.get_ask(&ask_id).await.unwrap().correlation_id, ask_id);
}
