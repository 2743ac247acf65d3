//! The tutorial's step 4 (`docs/tutorial.md`): a worker that publishes
//! itself in the directory, for any server on this host to find.

use layer_cake::directory::{Delivered, Dropped, NotPublished, Published, Scope};
use layer_cake::{Context, Faulted, Stop, on};
use layer_cake_demos::tutorial::Greet;

async fn worker(mut cx: Context, (): ()) -> Result<(), Faulted> {
    // A name of its own (many workers), under a prefix the server looks for.
    let name = format!("tutorial-greeter:{}", std::process::id());
    cx.publish(name, Scope::Host);
    loop {
        on!(cx.input().await, {
            Published as p => eprintln!("tutorial_4_worker: published {}", p.name),
            NotPublished as n => {
                return Err(Faulted::new(format!("cannot publish {}", n.name)).with_explanation(n.reason));
            },
            // A subscriber found it, or went away: nothing to do.
            Delivered as _ => {},
            Dropped as _ => {},
            Greet as g => {
                let _ = cx.reply(format!("hello {} from worker {}", g.name, std::process::id()));
            },
            Stop as _ => return Ok(()),
            other => tracing::warn!("ignored {}", other.signature()),
        })
    }
}

fn main() {
    layer_cake::create(worker)
}
