//! php-fpm's status page for monitoring, shared by `fcgi status` and `fcgi exporter`:
//!
//! | module | concern |
//! |---|---|
//! | `status` | the JSON page (`?json`, `?json&full`) parsed into a [`status::PoolStatus`] |
//! | `scrape` | asking one pool for it within a deadline, with a typed failure |
//! | `metrics` | Prometheus text 0.0.4 and OpenMetrics 1.0, hipages-compatible names |

pub mod metrics;
pub mod scrape;
pub mod status;
