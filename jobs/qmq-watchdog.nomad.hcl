# qmq-watchdog: QMQ's watchdog as a Nomad service job (see jobs/doc.go and README, Watchdog).
#
#   nomad job run jobs/qmq-watchdog.nomad.hcl                          # next to an embedded-SQLite metaserver
#   nomad job run -var jdbc_url=jdbc:mysql://db:3306/qmq_metaserver jobs/qmq-watchdog.nomad.hcl
#
# Two watchdogs (watchdog_count) elect a leader on a Consul lock (consul.address below;
# qmq/watchdog/<namespace>/leader, election.consul.*: a killed leader is replaced in 4 to 6 s), or on
# the metaserver's leader_election table with watchdog_config = { "election.consul.enable" = "false" };
# the leader resends the transactional messages applications left in the client databases registered
# with qmq tools AddDb. Each registers itself in Consul as qmq-watchdog with an HTTP check on /health;
# there is no Nomad service block, which would register it twice.
#
# The metaserver's database: with jdbc_url, its MySQL database (the watchdogs may then run on any
# clients, on distinct hosts); without, the metaserver's embedded SQLite file, so the watchdogs run
# where the metaserver's host volume is and mount it.

variable "qmq_binary" {
  type        = string
  default     = "/usr/local/bin/qmq"
  description = "Path of the qmq binary on the Nomad clients. With the exec driver it must lie inside the task's chroot (e.g. under /usr)."
}

variable "driver" {
  type        = string
  default     = "exec"
  description = "Task driver: exec (isolated; mounts the metaserver's host volume at store_root) or raw_exec (no isolation, no mounts: store_root is then the host volume's path)."

  validation {
    condition     = var.driver == "exec" || var.driver == "raw_exec"
    error_message = "The driver must be exec or raw_exec."
  }
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the watchdogs may run in."
}

variable "watchdog_count" {
  type        = number
  default     = 2
  description = "Number of watchdogs: one leads, the others take over within about 6 s if it dies."
}

variable "namespace" {
  type        = string
  default     = "default"
  description = "QMQ's namespace (room): the datasource_config rows served (qmq tools AddDb --room) and the election's name."
}

variable "app_code" {
  type        = string
  default     = "qmq-watchdog"
  description = "appCode of the watchdog's producer."
}

variable "meta_endpoint" {
  type        = string
  default     = "consul://qmq-metaserver"
  description = "meta.server.endpoint: where the producer finds the metaserver."
}

variable "consul_address" {
  type        = string
  default     = "127.0.0.1:8500"
  description = "Consul agent HTTP address the watchdog registers with (the node's local agent)."
}

variable "volume" {
  type        = string
  default     = "qmq-metaserver"
  description = "The metaserver's host volume, holding its embedded SQLite database. Unused with jdbc_url."
}

variable "store_root" {
  type        = string
  default     = "/data"
  description = "The metaserver's store.root as the task sees it: where exec mounts the host volume; with raw_exec, the host volume's path on the client."
}

variable "jdbc_url" {
  type        = string
  default     = ""
  description = "The metaserver's MySQL database, as in its datasource.properties: jdbc:mysql://host:3306/qmq_metaserver?useSSL=false. Empty = the embedded SQLite file on the host volume."
}

variable "jdbc_username" {
  type    = string
  default = ""
}

variable "jdbc_password" {
  type    = string
  default = ""
}

variable "watchdog_config" {
  type        = map(string)
  default     = {}
  description = "More watchdog.properties keys, passed as --set key=value (e.g. { \"checkInterval\" = \"30000\" })."
}

variable "cpu" {
  type    = number
  default = 300
}

variable "memory" {
  type    = number
  default = 256
}

locals {
  sqlite = var.jdbc_url == ""
  # --set flags of watchdog_config; the task adds the keys Nomad decides (port, IP) after them,
  # so that those win.
  config_args = flatten([for k, v in merge(var.watchdog_config, {
    "appCode"              = var.app_code
    "namespace"            = var.namespace
    "meta.server.endpoint" = var.meta_endpoint
    "consul.address"       = var.consul_address
    "store.root"           = var.store_root
  }) : ["--set", "${k}=${v}"]])
}

job "qmq-watchdog" {
  type        = "service"
  datacenters = var.datacenters

  update {
    max_parallel     = 1
    health_check     = "task_states"
    min_healthy_time = "10s"
    healthy_deadline = "3m"
  }

  group "watchdog" {
    count = var.watchdog_count

    network {
      port "http" {}
    }

    # With the embedded SQLite store the watchdogs read the metaserver's file: they are placed
    # on the client that has its host volume.
    dynamic "volume" {
      for_each = local.sqlite ? [var.volume] : []
      labels   = ["data"]
      content {
        type      = "host"
        source    = volume.value
        read_only = false
      }
    }

    restart {
      attempts = 10
      interval = "30m"
      delay    = "10s"
      mode     = "fail"
    }

    task "watchdog" {
      driver       = var.driver
      kill_timeout = "15s"

      config {
        command = var.qmq_binary
        args = concat(["watchdog", "--conf", "${NOMAD_TASK_DIR}/conf"], local.config_args, [
          "--set", "watchdog.http.port=${NOMAD_PORT_http}",
          # /health is registered in Consul at this IP.
          "--set", "watchdog.bind.host=${NOMAD_IP_http}",
        ])
      }

      dynamic "volume_mount" {
        for_each = local.sqlite && var.driver != "raw_exec" ? ["data"] : []
        content {
          volume      = volume_mount.value
          destination = var.store_root
          read_only   = false
        }
      }

      # datasource.properties keys through the environment: the password stays out of the
      # command line, and an empty jdbc.url means the embedded SQLite store.
      env {
        QMQ_JDBC_URL      = var.jdbc_url
        QMQ_JDBC_USERNAME = var.jdbc_username
        QMQ_JDBC_PASSWORD = var.jdbc_password
      }

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
