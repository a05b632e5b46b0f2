// Package consolebrowser tests the web console in a real browser: it
// builds qmq, runs `qmq dev` on free ports, and has headless Chromium
// (/usr/bin/chromium, driven by playwright-core from this directory's
// package.json; `npm ci` here installs it) open every page, log in, reset
// an offset, force a consumer offline and mark a group readonly
// (TestConsoleInBrowser); and search a message, see its records on the
// timeline and resend a dead letter, against a stub of the backup's API
// (TestConsoleBackupPagesInBrowser) and against qmq dev's real backup
// (TestConsoleBackupInBrowser).
// Screenshots are kept under artifacts/ (gitignored).
//
// Without node, Chromium or playwright-core the tests skip on a developer
// machine and fail when CI or QMQ_REQUIRE_BROWSER is set.
package consolebrowser
