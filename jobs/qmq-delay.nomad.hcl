# qmq-delay: ONE delay group as a Nomad service job; run it once per delay group (see jobs/doc.go and
# README, Delay messages).
#
#   nomad var put nomad/jobs/qmq-delay-qmq_delay01 admin_token=<token> \
#       delay_admin_secret=<the metaserver's delay.admin.secret> sync_secret=$(openssl rand -hex 32)
#     (or -var admin_token=… -var delay_admin_secret=… -var sync_secret=… below)
#   nomad job run -var delay_group=qmq_delay01 jobs/qmq-delay.nomad.hcl
#
# The job is written for a pair, task groups "a" (registered as DELAY_MASTER, role 5) and "b"
# (DELAY_SLAVE, role 6), each pinned to its own host volume and on distinct hosts, like
# qmq-broker.nomad.hcl. By default it places group a alone (with_slave=false); with_slave=true
# places b too, and both get wait.slave.wrote=true, failover.enable=true (the metaserver's lease:
# a promoted slave exits and Nomad restarts it in place as DELAY_MASTER) and the sync secret file.
# A former master whose logs run past the takeover point stops and asks for its store.root to be
# deleted (the delay store cannot cut a tail yet): see README, Delay messages.
#
# The delay server registers itself in Consul (service qmq-delay, tags group:<group> and
# role:<role>) when consul.address is set, which the job does.

variable "qmq_binary" {
  type        = string
  default     = "/usr/local/bin/qmq"
  description = "Path of the qmq binary on the Nomad clients. With the exec driver it must lie inside the task's chroot (e.g. under /usr)."
}

variable "driver" {
  type        = string
  default     = "exec"
  description = "Task driver: exec (isolated; mounts each host volume at its store root) or raw_exec (no isolation, no mounts: store_root_a and store_root_b are then the host volumes' paths)."

  validation {
    condition     = var.driver == "exec" || var.driver == "raw_exec"
    error_message = "The driver must be exec or raw_exec."
  }
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the delay servers may run in."
}

variable "delay_group" {
  type        = string
  default     = "qmq_delay01"
  description = "The delay group (AddBroker --brokerGroup, a name no real-time group uses); the job is qmq-delay-<delay_group>."

  validation {
    condition     = strlen(var.delay_group) > 0 && strlen(var.delay_group) <= 30 && regex_replace(var.delay_group, "^[A-Za-z0-9_.-]+$", "") == ""
    error_message = "The delay_group must be 1 to 30 letters, digits, '_', '.' or '-' (it is a row of the broker_group table and part of the job ID)."
  }
}

variable "with_slave" {
  type        = bool
  default     = false
  description = "Also run b, the DELAY_SLAVE; both then get wait.slave.wrote=true, failover.enable=true and sync.secret.file."
}

variable "volume_a" {
  type        = string
  default     = "qmq-delay-a"
  description = "Host volume of delay server a (client host_volume); a runs only on a client that has it."
}

variable "volume_b" {
  type        = string
  default     = "qmq-delay-b"
  description = "Host volume of delay server b."
}

variable "store_root_a" {
  type        = string
  default     = "/data"
  description = "store.root of a as its task sees it: where exec mounts volume_a; with raw_exec, volume_a's path on the client."
}

variable "store_root_b" {
  type        = string
  default     = "/data"
  description = "store.root of b (see store_root_a)."
}

variable "distinct_hosts" {
  type        = bool
  default     = true
  description = "Place a and b on different clients. Turn off only for a one-node cluster or a test."
}

variable "broker_port_a" {
  type        = number
  default     = 20801
  description = "broker.port of a (AddBroker --servePort): producers send delay messages here."
}

variable "broker_port_b" {
  type    = number
  default = 20801
}

variable "sync_port_a" {
  type        = number
  default     = 20802
  description = "sync.port of a (AddBroker --syncPort)."
}

variable "sync_port_b" {
  type    = number
  default = 20802
}

variable "http_port_a" {
  type        = number
  default     = 8082
  description = "delay.http.port of a: /health (role, scheduled, dueLagMillis) and /metrics."
}

variable "http_port_b" {
  type    = number
  default = 8082
}

variable "consul_address" {
  type        = string
  default     = "127.0.0.1:8500"
  description = "Consul agent HTTP address (the node's local agent): registration, and the fallback of consul:// lookups."
}

variable "meta_endpoint" {
  type        = string
  default     = "consul://qmq-metaserver"
  description = "meta.server.endpoint: consul://qmq-metaserver (Consul DNS on 127.0.0.1:8600; add ?dns=host:port for another) or http://<metaserver>:8080/meta/address."
}

variable "admin_token" {
  type        = string
  default     = ""
  description = "API token of qmq tools, for the prestart task's AddBroker. Empty (better): read from the Nomad variable nomad/jobs/qmq-delay-<delay_group>, key admin_token."
}

variable "delay_admin_secret" {
  type        = string
  default     = ""
  description = "delay.admin.secret: the metaserver signs CancelDelay requests with it (the same value as the metaserver's). Empty (better): read from the key delay_admin_secret of the Nomad variable nomad/jobs/qmq-delay-<delay_group>; without the key every cancel is refused."
}

variable "sync_secret" {
  type        = string
  default     = ""
  description = "sync.secret of both delay servers (with_slave only). Empty (better): read from the key sync_secret of the Nomad variable nomad/jobs/qmq-delay-<delay_group>."
}

variable "delay_config" {
  type        = map(string)
  default     = {}
  description = "More delay.properties keys for both delay servers, passed as --set key=value (e.g. { \"segment.scale.minute\" = \"30\" })."
}

variable "restart_delay" {
  type        = string
  default     = "10s"
  description = "Wait before a delay server that died is started again."
}

variable "cpu" {
  type    = number
  default = 1000
}

variable "memory" {
  type        = number
  default     = 1024
  description = "MB. The loaded window (load.in.advance.min) is held in memory at under 40 bytes per message."
}

variable "user" {
  type        = string
  default     = ""
  description = "User the tasks run as; empty = the driver's default (nobody with exec: the host volumes must be writable by that user)."
}

locals {
  # The members of the pair. role is only the first registration's: AddBroker --ifAbsent leaves
  # a registered member as it is.
  members = {
    a = {
      role        = 5
      volume      = var.volume_a
      store_root  = var.store_root_a
      broker_port = var.broker_port_a
      sync_port   = var.sync_port_a
      http_port   = var.http_port_a
    }
    b = {
      role        = 6
      volume      = var.volume_b
      store_root  = var.store_root_b
      broker_port = var.broker_port_b
      sync_port   = var.sync_port_b
      http_port   = var.http_port_b
    }
  }
  placed = var.with_slave ? local.members : { a = local.members.a }

  # What both delay servers share. delay_config may override these; the task adds the
  # per-member keys after them.
  config_args = flatten([for k, v in merge(
    {
      "meta.server.endpoint" = var.meta_endpoint
      "consul.address"       = var.consul_address
    },
    var.with_slave ? { "wait.slave.wrote" = "true", "failover.enable" = "true" } : {},
  var.delay_config) : ["--set", "${k}=${v}"]])

  # The pair's replication is authenticated by the sync secret (services/replication/syncauth).
  sync_args = var.with_slave ? ["--set", "sync.secret.file=${NOMAD_SECRETS_DIR}/sync.secret"] : []

  # qmq tools --metaserver takes consul://<service> or host:port, not the /meta/address URL.
  tools_metaserver = regex_replace(var.meta_endpoint, "^https?://([^/]+).*$", "$1")
  nomad_var        = "nomad/jobs/qmq-delay-${var.delay_group}"

  # Where delay.admin.secret comes from: the variable, the job's Nomad variable (only when the
  # token comes from there too: a template on a Nomad variable that does not exist would hold the
  # task), or nowhere (every cancel is then refused).
  delay_secret_from = var.delay_admin_secret != "" ? "var" : (var.admin_token == "" ? "nomadvar" : "none")
  delay_secret_args = local.delay_secret_from == "none" ? [] : ["--set", "delay.admin.secret.file=${NOMAD_SECRETS_DIR}/delay-admin.secret"]
}

job "qmq-delay" {
  id          = "qmq-delay-${var.delay_group}"
  type        = "service"
  datacenters = var.datacenters

  # a and b on different machines: the pair survives the loss of one.
  dynamic "constraint" {
    for_each = var.distinct_hosts ? [true] : []
    content {
      operator = "distinct_hosts"
      value    = "true"
    }
  }

  meta {
    delay_group = var.delay_group
  }

  update {
    max_parallel     = 1
    health_check     = "task_states"
    min_healthy_time = "10s"
    healthy_deadline = "5m"
  }

  dynamic "group" {
    for_each = local.placed
    labels   = [group.key]

    content {
      count = 1

      network {
        port "broker" {
          static = group.value.broker_port
        }
        port "sync" {
          static = group.value.sync_port
        }
        port "http" {
          static = group.value.http_port
        }
      }

      # The store (message log, schedule buckets, dispatch log) is on this host volume: the delay
      # server runs only where the volume is.
      volume "data" {
        type      = "host"
        source    = group.value.volume
        read_only = false
      }

      # Pinned to its data: restarted in place, forever, never rescheduled elsewhere.
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

      # A client cut off from the Nomad servers keeps its delay server running for an hour and the
      # allocation is kept when it returns (a replacement could only run where the volume is).
      # max_client_disconnect is the Nomad 1.6 form; 1.8 deprecated it for the `disconnect` block.
      max_client_disconnect = "1h"

      # Registers the delay server before each start of the allocation; one already registered
      # (whatever its role now) is left as it is.
      task "register" {
        driver = var.driver
        user   = var.user

        lifecycle {
          hook    = "prestart"
          sidecar = false
        }

        # The metaserver may not be up yet: try again soon.
        restart {
          attempts = 120
          delay    = "5s"
        }

        config {
          command = var.qmq_binary
          args = [
            "tools", "AddBroker", "--ifAbsent",
            "--metaserver=${local.tools_metaserver}",
            "--brokerGroup=${var.delay_group}",
            "--role=${group.value.role}",
            # The delay server identifies itself by os.Hostname() and broker.port.
            "--hostname=${attr.unique.hostname}",
            "--ip=${NOMAD_IP_broker}",
            "--servePort=${NOMAD_PORT_broker}",
            "--syncPort=${NOMAD_PORT_sync}",
          ]
        }

        env {
          CONSUL_HTTP_ADDR = var.consul_address
        }

        # The token reaches qmq tools through its environment (QMQ_TOOLS_TOKEN), never its command line.
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

      task "delay" {
        driver       = var.driver
        user         = var.user
        kill_timeout = "30s"

        config {
          command = var.qmq_binary
          args = concat(["delay", "--conf", "${NOMAD_TASK_DIR}"], local.config_args, [
            "--set", "broker.port=${NOMAD_PORT_broker}",
            "--set", "sync.port=${NOMAD_PORT_sync}",
            "--set", "delay.http.port=${NOMAD_PORT_http}",
            "--set", "delay.advertise.ip=${NOMAD_IP_broker}",
            "--set", "store.root=${group.value.store_root}",
          ], local.delay_secret_args, local.sync_args)
        }

        # The secrets reach the delay server as files in secrets/, never on its command line: from
        # the variables, or else from the job's Nomad variable.
        dynamic "template" {
          for_each = local.delay_secret_from == "none" ? [] : ["delay-admin.secret"]
          content {
            destination = "secrets/${template.value}"
            data        = local.delay_secret_from == "var" ? "${var.delay_admin_secret}\n" : "{{ with nomadVar \"${local.nomad_var}\" }}{{ .delay_admin_secret }}{{ end }}\n"
          }
        }

        dynamic "template" {
          for_each = var.with_slave ? ["sync.secret"] : []
          content {
            destination = "secrets/${template.value}"
            data        = var.sync_secret != "" ? "${var.sync_secret}\n" : "{{ with nomadVar \"${local.nomad_var}\" }}{{ .sync_secret }}{{ end }}\n"
          }
        }

        # raw_exec mounts nothing: the store is then written straight to store_root on the host.
        dynamic "volume_mount" {
          for_each = var.driver == "raw_exec" ? [] : ["data"]
          content {
            volume      = volume_mount.value
            destination = group.value.store_root
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
}
