use serde_json::json;

use super::*;
use crate::core::ServicePort;

fn decode_err(value: Value) -> String {
    match AnyObject::decode(value) {
        Ok(o) => panic!("decoded {o:?}"),
        Err(e) => e.to_string(),
    }
}

fn service_json() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "targetPort": "http"}]}
    })
}

#[test]
fn decodes_by_api_version_and_kind() {
    let obj = AnyObject::decode(service_json()).expect("decodes");
    assert_eq!(obj.info(), &resources::SERVICE);
    assert_eq!(obj.name(), "web");
    assert_eq!(obj.namespace(), None);
    let AnyObject::Service(svc) = &obj else {
        panic!("not a Service: {obj:?}");
    };
    assert_eq!(
        svc.spec.ports[0].target_port,
        Some(crate::IntOrString::String("http".into()))
    );
}

#[test]
fn unknown_kind_is_named() {
    let err = decode_err(json!({"apiVersion": "apps/v1", "kind": "Deployment"}));
    assert_eq!(err, "unknown kind \"Deployment\" (apiVersion \"apps/v1\")");
    let err = decode_err(json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress"}));
    assert_eq!(
        err,
        "unknown kind \"Ingress\" (apiVersion \"extensions/v1beta1\"); Ingress is served as apiVersion \"networking.k8s.io/v1\""
    );
}

#[test]
fn missing_type_fields_are_named() {
    assert_eq!(
        decode_err(json!({"kind": "Pod"})),
        "missing field \"apiVersion\""
    );
    assert_eq!(
        decode_err(json!({"apiVersion": "v1"})),
        "missing field \"kind\""
    );
    assert_eq!(
        decode_err(json!({"apiVersion": 1, "kind": "Pod"})),
        "apiVersion: must be a string, found a number"
    );
    assert_eq!(
        decode_err(json!(["a"])),
        "expected a mapping with apiVersion and kind, found a list"
    );
}

#[test]
fn unknown_field_is_rejected_with_its_full_path() {
    let mut v = service_json();
    v["spec"]["ports"][0]["targetport"] = json!(8080);
    let err = AnyObject::decode(v).expect_err("misspelled field");
    assert_eq!(err.path.as_deref(), Some("spec.ports[0].targetport"));
    assert!(
        err.message
            .starts_with("unknown field `targetport`, expected one of"),
        "{err}"
    );
    assert!(err.message.contains("`targetPort`"), "{err}");

    let mut v = service_json();
    v["metadata"]["lables"] = json!({"app": "web"});
    let err = AnyObject::decode(v).expect_err("misspelled field");
    assert_eq!(err.path.as_deref(), Some("metadata.lables"));
}

#[test]
fn camel_case_spelling_of_acronyms_is_rejected() {
    // rename_all = "camelCase" would have produced these; Kubernetes spells them clusterIP.
    let mut v = service_json();
    v["spec"]["clusterIp"] = json!("10.96.0.1");
    let err = AnyObject::decode(v).expect_err("clusterIp is not a field");
    assert_eq!(err.path.as_deref(), Some("spec.clusterIp"));
}

#[test]
fn wrong_types_name_the_path() {
    let mut v = service_json();
    v["spec"]["ports"][0]["port"] = json!("eighty");
    assert_eq!(
        decode_err(v),
        "spec.ports[0].port: invalid type: string \"eighty\", expected i32"
    );
    let mut v = service_json();
    v["spec"]["ports"][0]["targetPort"] = json!(true);
    assert_eq!(
        decode_err(v),
        "spec.ports[0].targetPort: invalid type: boolean `true`, expected a 32-bit integer or a string"
    );
    let mut v = service_json();
    v["spec"]["ports"][0]["targetPort"] = json!(4294967296u64);
    assert!(decode_err(v).starts_with("spec.ports[0].targetPort: invalid value"));
}

#[test]
fn nulls_mean_unset() {
    let mut v = service_json();
    v["metadata"]["creationTimestamp"] = Value::Null;
    v["spec"]["clusterIP"] = Value::Null;
    v["spec"]["selector"] = Value::Null;
    let obj = AnyObject::decode(v).expect("nulls are accepted");
    let AnyObject::Service(svc) = obj else {
        panic!("not a Service");
    };
    assert_eq!(svc.spec.cluster_ip, "");
    assert_eq!(svc.metadata.creation_timestamp, None);
}

#[test]
fn to_value_always_has_type_fields() {
    let mut svc = Service::default();
    svc.api_version.clear();
    svc.kind.clear();
    svc.metadata.name = "web".into();
    let v = AnyObject::from(svc).to_value();
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "Service");
    assert_eq!(v["metadata"]["name"], "web");

    let dns = AnyObject::from(Dns::default()).to_value();
    assert_eq!(dns["apiVersion"], "weft.io/v1");
    assert_eq!(dns["kind"], "DNS");
}

#[test]
fn typed_defaults_carry_type_fields() {
    let v = serde_json::to_value(Ingress::default()).expect("serializes");
    assert_eq!(v["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(v["kind"], "Ingress");
}

#[test]
fn conversions() {
    let mut svc = Service::default();
    svc.spec.ports.push(ServicePort {
        port: 80,
        ..Default::default()
    });
    let any = AnyObject::from(svc.clone());
    assert_eq!(Service::try_from(any.clone()), Ok(svc));
    assert!(Pod::try_from(any).is_err());
}

#[test]
fn serde_impls_go_through_decode() {
    let obj: AnyObject = serde_json::from_value(service_json()).expect("decodes");
    assert_eq!(obj.kind(), "Service");
    let back = serde_json::to_value(&obj).expect("encodes");
    assert_eq!(back["spec"]["ports"][0]["targetPort"], "http");
    let err = serde_json::from_value::<AnyObject>(json!({"apiVersion": "v1", "kind": "Secret"}))
        .expect_err("unknown kind");
    assert!(err.to_string().contains("unknown kind \"Secret\""));
}

#[test]
fn defaults_then_validate() {
    let mut obj = AnyObject::decode(service_json()).expect("decodes");
    obj.apply_defaults();
    let v = obj.to_value();
    assert_eq!(v["spec"]["type"], "ClusterIP");
    assert_eq!(v["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(obj.validate(), Ok(()));
    obj.meta_mut().name = "Web".into();
    let errs = obj.validate().expect_err("bad name");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs.0[0].path, "metadata.name");
}

const MANIFEST: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - name: http
    port: 80
    targetport: 8080
";

#[test]
fn documents_locate_strict_errors() {
    let results = decode_documents(MANIFEST, "svc.yaml");
    assert_eq!(results.len(), 1);
    let err = results[0].as_ref().expect_err("misspelled field");
    assert_eq!(err.source.as_deref(), Some("svc.yaml"));
    assert_eq!(err.document, Some(1));
    assert_eq!((err.line, err.column), (Some(9), Some(5)));
    assert_eq!(err.path.as_deref(), Some("spec.ports[0].targetport"));
    assert!(err
        .to_string()
        .starts_with("svc.yaml:9:5: spec.ports[0].targetport: unknown field `targetport`"));
}

#[test]
fn yaml_syntax_errors_carry_line_and_column() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n spec: {}\n";
    let results = parse_documents(text, "bad.yaml");
    assert_eq!(results.len(), 1);
    let err = results[0].as_ref().expect_err("syntax error");
    assert_eq!((err.line, err.column), (Some(5), Some(2)));
    assert_eq!(err.path, None);
    assert!(!err.message.contains("line 5"), "{err}");
    assert!(err.to_string().starts_with("bad.yaml:5:2: "), "{err}");

    let text = "kind: Pod\nmetadata: {name: [web\n";
    let err = parse_documents(text, "")
        .pop()
        .expect("one result")
        .expect_err("syntax error");
    assert_eq!(err.line, Some(3));
    assert_eq!(err.source, None);
}

#[test]
fn multi_document_streams() {
    let text = "\
# leading comment
---
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
---
# only a comment
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
---
{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"p\"}, \"spec\": {\"containers\": []}}
";
    let results = decode_documents(text, "all.yaml");
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref().map(|o| o.kind()), Ok("Namespace"));
    let err = results[1].as_ref().expect_err("unknown kind");
    assert_eq!(
        err.to_string(),
        "all.yaml:12:1: unknown kind \"Deployment\" (apiVersion \"apps/v1\")"
    );
    assert_eq!(results[2].as_ref().map(|o| o.kind()), Ok("Pod"));
}

#[test]
fn lists_expand_to_their_items() {
    let text = "\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: a
- apiVersion: v1
  kind: Namespace
  metadata:
    name: b
    nmae: typo
";
    let results = decode_documents(text, "list.yaml");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].as_ref().map(|o| o.name()), Ok("a"));
    let err = results[1].as_ref().expect_err("typo");
    assert_eq!(err.path.as_deref(), Some("items[1].metadata.nmae"));
    assert_eq!(err.line, Some(12));

    // A typed list as the API returns it: items without apiVersion and kind.
    let text = r#"{"apiVersion": "v1", "kind": "ServiceList", "metadata": {},
        "items": [{"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}]}"#;
    let results = decode_documents(text, "");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].as_ref().map(|o| o.kind()), Ok("Service"));

    let results = parse_documents("kind: List\nitems: 3\n", "");
    let err = results[0].as_ref().expect_err("items not a list");
    assert_eq!(err.to_string(), "line 2, column 1: items: must be a list");
}

#[test]
fn empty_input_has_no_documents() {
    assert!(decode_documents("", "x").is_empty());
    assert!(decode_documents("# nothing\n---\n", "x").is_empty());
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
    let inputs = [
        deep.as_str(),
        "\u{0}",
        "kind: List\nitems: [1, null, {kind: Pod}]\n",
        "apiVersion: v1\nkind: Service\nspec: {ports: [{port: 1e99}]}\n",
        "a: &x [*x]\n",
        "apiVersion: v1\nkind: Service\nmetadata: {labels: {? [a]: b}}\n",
        "é: ü\n---\n...\n---\n",
        "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: c, ports: [{containerPort: -1}]}]}\n",
    ];
    for input in inputs {
        for mut obj in decode_documents(input, "x.yaml").into_iter().flatten() {
            obj.apply_defaults();
            let _ = obj.validate();
            let _ = obj.validate_update(&obj.clone());
        }
    }
}
