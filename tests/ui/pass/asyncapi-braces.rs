// AsyncAPI's `{name}` and `{name: Type}` parameter forms, mixed with `<name>`.
use serde::{Deserialize, Serialize};
use ws_channels::{Params, channel};

#[channel("/tenants/{tenantId}/<deviceId>/{port: u16}")]
#[derive(Serialize, Deserialize)]
struct Telemetry {
    value: f64,
}

fn main() {
    let params = TelemetryParams::new("acme", "d-1", 8080u16);
    assert_eq!(params.tenant_id, "acme");
    assert_eq!(params.device_id, "d-1");
    assert_eq!(params.port, 8080);
    assert_eq!(params.to_string(), "tenants/acme/d-1/8080");
    assert_eq!(
        <TelemetryParams as Params>::TEMPLATE.address(),
        "tenants/{tenantId}/{deviceId}/{port}"
    );
    assert_eq!(
        "tenants/acme/d-1/8080".parse::<TelemetryParams>().unwrap(),
        params
    );
}
