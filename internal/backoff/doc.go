// Package backoff is the one retry schedule of qmq-go: exponential delays
// from Min to Max with "equal jitter", and Sleep, the one wait that ends
// early when its context does.
//
// The n-th delay (n from 0) is d = min(Min·2^n, Max), of which a random part
// of up to half is taken off: it is drawn uniformly from [d/2, d]. So
//
//   - Max stays a hard ceiling: a configured retry interval is never
//     exceeded, and the interval an operator reads in a log line or a
//     property (meta.retry.interval.ms, ...) is the longest wait;
//   - no retry comes sooner than half the step, so a failing metaserver,
//     master or database is never hammered by a zero delay (full jitter
//     draws from [0, d] and can retry at once);
//   - processes that failed together (brokers restarted together, every
//     consumer of a broker that went away) spread their retries over half
//     the interval instead of arriving in the same millisecond. Without
//     jitter they stay in step forever.
//
// A constant schedule is Min == Max: every delay is drawn from [Max/2, Max].
//
// Why not github.com/cenkalti/backoff/v5: its ExponentialBackOff randomizes
// around the capped interval (by ±50 % by default), so it waits up to 1.5 ×
// MaxInterval, and its Retry owns the loop, while our call sites keep their
// own loops (failure counts for logging, a next-attempt time set under a
// lock, give-up rules). What they need is two methods and a Sleep: about 60
// lines here, against a new module and its options to learn.
//
// A Backoff is not safe for concurrent use: each retry loop owns one (or
// guards it with the lock that guards its loop state).
package backoff
