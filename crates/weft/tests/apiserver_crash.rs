//! SIGKILL during a write storm: every acknowledged write survives the restart, and
//! watchers resume from their last resourceVersion with no gap and no duplicate.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{free_port, service, ApiServerProcess};
use futures::StreamExt;
use serde_json::{json, Value};

const SVCS: &str = "/api/v1/namespaces/default/services";

#[derive(Debug, Clone, PartialEq)]
struct Seen {
    kind: String,
    name: String,
    rv: u64,
}

fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .expect("resourceVersion")
}

/// Streams watch events into `into` until the stream ends or `until` names an object seen.
async fn watch_into(
    client: reqwest::Client,
    url: String,
    token: String,
    from: u64,
    into: Arc<Mutex<Vec<Seen>>>,
    until: Option<String>,
) {
    let Ok(resp) = client
        .get(format!("{url}{SVCS}?watch=true&resourceVersion={from}"))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(120))
        .send()
        .await
    else {
        return;
    };
    let mut stream = resp.bytes_stream();
    let mut buffer = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        buffer.extend_from_slice(&chunk);
        while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=pos).collect();
            let event: Value = serde_json::from_slice(&line).expect("watch line is JSON");
            assert_ne!(event["type"], "ERROR", "watch error: {event}");
            let seen = Seen {
                kind: event["type"].as_str().unwrap_or("").to_string(),
                name: event["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                rv: rv_of(&event["object"]),
            };
            let done = until.as_deref() == Some(seen.name.as_str());
            into.lock().unwrap().push(seen);
            if done {
                return;
            }
        }
    }
}

/// Every event after `from` up to and including the sentinel Service's creation.
async fn read_until_sentinel(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    from: u64,
) -> Vec<Seen> {
    let events = Arc::new(Mutex::new(Vec::new()));
    tokio::time::timeout(
        Duration::from_secs(60),
        watch_into(
            client.clone(),
            url.to_string(),
            token.to_string(),
            from,
            events.clone(),
            Some("sentinel".into()),
        ),
    )
    .await
    .expect("watch read up to the sentinel in time");
    let events = events.lock().unwrap().clone();
    events
}

#[derive(Debug, Clone)]
enum Op {
    Create,
    Update,
    Delete,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_write_storm_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let port = free_port();
    let mut server = ApiServerProcess::start(&data_dir, port);
    server.wait_ready().await;
    let client = server.client();
    let (url, token) = (server.url.clone(), server.token.clone());

    let list: Value = client
        .get(format!("{url}{SVCS}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let start_rv = rv_of(&list);

    let watchers: Vec<Arc<Mutex<Vec<Seen>>>> =
        (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let watcher_tasks: Vec<_> = watchers
        .iter()
        .map(|w| {
            tokio::spawn(watch_into(
                client.clone(),
                url.clone(),
                token.clone(),
                start_rv,
                w.clone(),
                None,
            ))
        })
        .collect();

    // Writers: create, update, then delete each name, recording what the server acknowledged.
    let acked: Arc<Mutex<Vec<(String, Op, u64)>>> = Arc::default();
    let in_flight: Arc<Mutex<Vec<(String, Op)>>> = Arc::default();
    let writer_tasks: Vec<_> = (0..8)
        .map(|w| {
            let (client, url, token, acked, in_flight) = (
                client.clone(),
                url.clone(),
                token.clone(),
                acked.clone(),
                in_flight.clone(),
            );
            tokio::spawn(async move {
                for i in 0.. {
                    let name = format!("s-{w}-{i}");
                    in_flight.lock().unwrap().push((name.clone(), Op::Create));
                    let Ok(r) = client
                        .post(format!("{url}{SVCS}"))
                        .bearer_auth(&token)
                        .json(&service(&name))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let Ok(created) = r.json::<Value>().await else {
                        return;
                    };
                    acked
                        .lock()
                        .unwrap()
                        .push((name.clone(), Op::Create, rv_of(&created)));
                    if i % 3 == 0 {
                        let mut changed = created.clone();
                        changed["metadata"]["labels"] = json!({"round": i.to_string()});
                        in_flight.lock().unwrap().push((name.clone(), Op::Update));
                        let Ok(r) = client
                            .put(format!("{url}{SVCS}/{name}"))
                            .bearer_auth(&token)
                            .json(&changed)
                            .send()
                            .await
                        else {
                            return;
                        };
                        let Ok(updated) = r.json::<Value>().await else {
                            return;
                        };
                        acked
                            .lock()
                            .unwrap()
                            .push((name.clone(), Op::Update, rv_of(&updated)));
                    }
                    if i % 5 == 0 {
                        in_flight.lock().unwrap().push((name.clone(), Op::Delete));
                        let Ok(r) = client
                            .delete(format!("{url}{SVCS}/{name}"))
                            .bearer_auth(&token)
                            .send()
                            .await
                        else {
                            return;
                        };
                        if !r.status().is_success() {
                            return;
                        }
                        let Ok(body) = r.text().await else { return };
                        let _ = body;
                        // A delete's revision is not in its response; the history check below
                        // finds it by name.
                        acked.lock().unwrap().push((name.clone(), Op::Delete, 0));
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.sigkill();
    for t in writer_tasks {
        t.await.unwrap();
    }
    for t in watcher_tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the storm wrote too little to prove anything: {}",
        acked.len()
    );

    let server = ApiServerProcess::start(&data_dir, port);
    server.wait_ready().await;
    let client = server.client();
    let (url, token) = (server.url.clone(), server.token.clone());

    // A sentinel write marks the end of history for every reader below.
    let r = client
        .post(format!("{url}{SVCS}"))
        .bearer_auth(&token)
        .json(&service("sentinel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // The whole history since the start, read after the restart.
    let history = read_until_sentinel(&client, &url, &token, start_rv).await;
    assert_eq!(history.last().map(|s| s.name.as_str()), Some("sentinel"));
    for pair in history.windows(2) {
        assert!(
            pair[0].rv < pair[1].rv,
            "history in strictly increasing revisions"
        );
    }

    // Every acknowledged write is in the history, at its acknowledged revision.
    for (name, op, rv) in &acked {
        match op {
            Op::Create => assert!(
                history.contains(&Seen {
                    kind: "ADDED".into(),
                    name: name.clone(),
                    rv: *rv
                }),
                "acked create of {name} at {rv} lost"
            ),
            Op::Update => assert!(
                history.contains(&Seen {
                    kind: "MODIFIED".into(),
                    name: name.clone(),
                    rv: *rv
                }),
                "acked update of {name} at {rv} lost"
            ),
            Op::Delete => assert!(
                history
                    .iter()
                    .any(|s| s.kind == "DELETED" && &s.name == name),
                "acked delete of {name} lost"
            ),
        }
    }
    // And the current state agrees: acked deletes are gone, other acked objects are present
    // unless the writer's last, unacknowledged request was their delete.
    let unacked_deletes: Vec<String> = in_flight
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, op)| matches!(op, Op::Delete))
        .map(|(n, _)| n.clone())
        .collect();
    let list: Value = client
        .get(format!("{url}{SVCS}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let present: std::collections::BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for (name, op, _) in &acked {
        let deleted = acked
            .iter()
            .any(|(n, o, _)| n == name && matches!(o, Op::Delete));
        if deleted {
            assert!(
                !present.contains(name),
                "{name} was deleted (acknowledged) but is back"
            );
        } else if !unacked_deletes.contains(name) {
            assert!(
                present.contains(name),
                "{name} ({op:?} acknowledged) is missing after the restart"
            );
        }
    }

    // Each watcher resumes from its last resourceVersion and ends up with exactly the history.
    for w in &watchers {
        let before = w.lock().unwrap().clone();
        let resume_from = before.last().map_or(start_rv, |s| s.rv);
        let mut combined = before;
        combined.extend(read_until_sentinel(&client, &url, &token, resume_from).await);
        assert_eq!(
            combined.len(),
            history.len(),
            "resumed watcher saw a different number of events"
        );
        assert_eq!(
            combined, history,
            "resumed watcher has a gap or a duplicate"
        );
    }
}
