# qmq-backup: the backup of ONE broker group as a Nomad service job; run it once per broker group
# (see docs/backup-follower.md and README, Backup service).
#
#   nomad var put nomad/jobs/qmq-backup-qmq_group01 admin_token=<token> \
#       sync_secret=<the group's sync.secret> backup_admin_token=$(openssl rand -hex 16)
#     (or -var admin_token=… -var sync_secret=… -var backup_admin_token=… below)
#   nomad job run -var broker_group=qmq_group01 jobs/qmq-backup.nomad.hcl
#
# The backup registers as the group's BACKUP (role 4) before each start (AddBroker --ifAbsent, the
# row's servePort is its HTTP port), asks the metaserver which slave to follow (the master while the
# group has none), and follows the new slave after a failover by itself. Its checkpoint and, with
# store_type=pebble, its store live on a host volume: it is pinned there, restarted in place.
# With store_type=hbase it writes QMQ's tables through the HBase REST gateway (create them once with
# `qmq query create-hbase-tables`); the checkpoint and the name dictionary stay on the volume.
#
# The backup registers itself in Consul (service qmq-backup, tag group:<group>, HTTP check on
# /health) when consul.address is set, which the job does.

variable "qmq_binary" {
  type        = string
  default     = "/usr/local/bin/qmq"
  description = "Path of the qmq binary on the Nomad clients. With the exec driver it must lie inside the task's chroot (e.g. under /usr)."
}

variable "driver" {
  type        = string
  default     = "exec"
  description = "Task driver: exec (isolated; mounts the host volume at store_root) or raw_exec (no isolation, no mounts: store_root is then the host volume's path)."

  validation {
    condition     = var.driver == "exec" || var.driver == "raw_exec"
    error_message = "The driver must be exec or raw_exec."
  }
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the backup may run in."
}

variable "broker_group" {
  type        = string
  default     = "qmq_group01"
  description = "The broker group this backup follows (AddBroker --brokerGroup); the job is qmq-backup-<broker_group>."

  validation {
    condition     = strlen(var.broker_group) > 0 && strlen(var.broker_group) <= 30 && regex_replace(var.broker_group, "^[A-Za-z0-9_.-]+$", "") == ""
    error_message = "The broker_group must be 1 to 30 letters, digits, '_', '.' or '-' (it is a row of the broker table and part of the job ID)."
  }
}

variable "volume" {
  type        = string
  default     = "qmq-backup"
  description = "Host volume of the backup (client host_volume): its checkpoint, and the Pebble store."
}

variable "store_root" {
  type        = string
  default     = "/data"
  description = "store.root as the task sees it: where exec mounts the volume; with raw_exec, the volume's path on the client."
}

variable "store_type" {
  type        = string
  default     = "pebble"
  description = "store.type: pebble (embedded, on the volume) or hbase (QMQ's tables through the REST gateway hbase_rest_url)."

  validation {
    condition     = var.store_type == "pebble" || var.store_type == "hbase"
    error_message = "The store_type must be pebble or hbase."
  }
}

variable "hbase_rest_url" {
  type        = string
  default     = ""
  description = "backup.hbase.rest.url (store_type=hbase): the HBase REST gateway, e.g. http://hbase-rest:8080."
}

variable "http_port" {
  type        = number
  default     = 8082
  description = "backup.server.http.port (QMQ's backup port in its samples): the query API, /health, /metrics. It is also the port of the backup's row in the broker table."
}

variable "consul_address" {
  type        = string
  default     = "127.0.0.1:8500"
  description = "Consul agent HTTP address (the node's local agent): registration, and the fallback of consul:// lookups."
}

variable "meta_endpoint" {
  type        = string
  default     = "consul://qmq-metaserver"
  description = "meta.server.endpoint: consul://qmq-metaserver or http://<metaserver>:8080/meta/address."
}

variable "admin_token" {
  type        = string
  default     = ""
  description = "API token of qmq tools, for the prestart task's AddBroker. Empty (better): read from the Nomad variable nomad/jobs/qmq-backup-<broker_group>, key admin_token."
}

variable "sync_secret" {
  type        = string
  default     = ""
  description = "The group's sync.secret (the brokers'); the backup proves it on the slave's sync port. Empty (better): read from the key sync_secret of the job's Nomad variable."
}

variable "with_sync_secret" {
  type        = bool
  default     = true
  description = "The group's brokers have a sync.secret (they should). false: the backup has none either."
}

variable "with_resend" {
  type        = bool
  default     = false
  description = "Allow POST /api/message/dead/resend with backup.admin.token, read from var.backup_admin_token or the key backup_admin_token of the job's Nomad variable."
}

variable "backup_admin_token" {
  type        = string
  default     = ""
  description = "backup.admin.token (with_resend). Empty (better): the key backup_admin_token of the job's Nomad variable."
}

variable "backup_config" {
  type        = map(string)
  default     = {}
  description = "More backup.properties keys, passed as --set key=value (e.g. { \"backup.message.content\" = \"true\" })."
}

variable "restart_delay" {
  type    = string
  default = "10s"
}

variable "cpu" {
  type    = number
  default = 1000
}

variable "memory" {
  type        = number
  default     = 512
  description = "MB. The backup holds one answer of the slave (1 MiB of log) per log, Pebble's cache (64 MiB) and the pulls waiting for acks."
}

variable "user" {
  type        = string
  default     = ""
  description = "User the tasks run as; empty = the driver's default (nobody with exec: the host volume must be writable by that user)."
}

locals {
  config_args = flatten([for k, v in merge(
    {
      "meta.server.endpoint" = var.meta_endpoint
      "consul.address"       = var.consul_address
      "store.type"           = var.store_type
    },
    var.store_type == "hbase" ? { "backup.hbase.rest.url" = var.hbase_rest_url } : {},
  var.backup_config) : ["--set", "${k}=${v}"]])

  secret_args = concat(
    var.with_sync_secret ? ["--set", "sync.secret.file=${NOMAD_SECRETS_DIR}/sync.secret"] : [],
    var.with_resend ? ["--set", "backup.admin.token.file=${NOMAD_SECRETS_DIR}/backup-admin.token"] : [],
  )
  secrets = merge(
    var.with_sync_secret ? { "sync.secret" = { value = var.sync_secret, key = "sync_secret" } } : {},
    var.with_resend ? { "backup-admin.token" = { value = var.backup_admin_token, key = "backup_admin_token" } } : {},
  )

  tools_metaserver = regex_replace(var.meta_endpoint, "^https?://([^/]+).*$", "$1")
  nomad_var        = "nomad/jobs/qmq-backup-${var.broker_group}"
}

job "qmq-backup" {
  id          = "qmq-backup-${var.broker_group}"
  type        = "service"
  datacenters = var.datacenters

  meta {
    broker_group = var.broker_group
  }

  update {
    max_parallel     = 1
    health_check     = "task_states"
    min_healthy_time = "10s"
    healthy_deadline = "5m"
  }

  group "backup" {
    count = 1

    network {
      port "http" {
        static = var.http_port
      }
    }

    volume "data" {
      type      = "host"
      source    = var.volume
      read_only = false
    }

    # Pinned to its checkpoint: restarted in place, never rescheduled elsewhere (a backup started
    # elsewhere would index the group from scratch; with HBase that rewrites rows, harmless but slow).
    restart {
      attempts = 20
      interval = "10m"
      delay    = var.restart_delay
      mode     = "delay"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    max_client_disconnect = "1h"

    # Registers the backup (role 4) before each start; a registered one is left as it is. The row's
    # syncPort is not listened on (AddBroker wants one distinct from the servePort).
    task "register" {
      driver = var.driver
      user   = var.user

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      restart {
        attempts = 120
        delay    = "5s"
      }

      config {
        command = var.qmq_binary
        args = [
          "tools", "AddBroker", "--ifAbsent",
          "--metaserver=${local.tools_metaserver}",
          "--brokerGroup=${var.broker_group}",
          "--role=4",
          # The backup identifies itself by os.Hostname() and broker.port.
          "--hostname=${attr.unique.hostname}",
          "--ip=${NOMAD_IP_http}",
          "--servePort=${NOMAD_PORT_http}",
          "--syncPort=${var.http_port + 1}",
        ]
      }

      env {
        CONSUL_HTTP_ADDR = var.consul_address
      }

      template {
        destination = "secrets/tools.env"
        env         = true
        data        = var.admin_token != "" ? "QMQ_TOOLS_TOKEN=${var.admin_token}\n" : "{{ with nomadVar \"${local.nomad_var}\" }}QMQ_TOOLS_TOKEN={{ .admin_token }}{{ end }}\n"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }

    task "backup" {
      driver       = var.driver
      user         = var.user
      kill_timeout = "30s"

      config {
        command = var.qmq_binary
        args = concat(["backup", "--conf", "${NOMAD_TASK_DIR}"], local.config_args, [
          "--set", "broker.port=${NOMAD_PORT_http}",
          "--set", "backup.server.http.port=${NOMAD_PORT_http}",
          "--set", "store.root=${var.store_root}",
        ], local.secret_args)
      }

      # Secrets reach the backup as files in secrets/, never on its command line.
      dynamic "template" {
        for_each = local.secrets
        content {
          destination = "secrets/${template.key}"
          data        = template.value.value != "" ? "${template.value.value}\n" : "{{ with nomadVar \"${local.nomad_var}\" }}{{ .${template.value.key} }}{{ end }}\n"
        }
      }

      dynamic "volume_mount" {
        for_each = var.driver == "raw_exec" ? [] : ["data"]
        content {
          volume      = volume_mount.value
          destination = var.store_root
          read_only   = false
        }
      }

      env {
        CONSUL_HTTP_ADDR = var.consul_address
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
