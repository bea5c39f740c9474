//! An MQTT subscriber that records every message it receives, with a persistent
//! session so that it misses nothing across a broker restart.

use std::{
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

/// A background subscriber.
pub struct Observer {
    received: Arc<Mutex<Vec<Received>>>,
    client: Client,
}

impl Observer {
    /// Subscribes to `filter` on the broker at `port` with QoS 1 and a
    /// persistent session named `id`.
    pub fn start(port: u16, id: &str, filter: &str) -> Observer {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_clean_session(false);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = Client::new(options, 100);
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        let filter = filter.to_owned();
        let subscriber = client.clone();
        thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        // Re-subscribing is harmless with a resumed session and
                        // needed with a new one.
                        let _ = subscriber.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        sink.lock().unwrap().push(Received {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    // The broker is away: retry without spinning.
                    Err(_) => thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Observer { received, client }
    }

    /// A copy of everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Whether a message matching `pred` has been received.
    pub fn saw(&self, pred: impl Fn(&Received) -> bool) -> bool {
        self.received.lock().unwrap().iter().any(pred)
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer").finish_non_exhaustive()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}
