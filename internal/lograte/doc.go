// Package lograte keeps an error that every request hits — a full disk
// refusing each send, a flood of refused connections, forged handshakes —
// to one log line per interval with a count of the lines held back, so an
// attacker or a stuck dependency cannot flood the log (or fill the disk that
// is already full). One Limiter per kind of line: two causes sharing one
// would hide each other.
package lograte
