// What each route of the table (api/routes.h) does: read the body with its resource's parser
// (api/resources/), make the Controller call, and answer. Every endpoint runs on the VMM thread,
// inside handle() (api/handler.h).
#pragma once

#include "api/message.h"
#include "api/routes.h"

namespace microvm::api {

Response get_instance_info(const Call& call);      // GET /
Response get_version(const Call& call);            // GET /version
Response get_machine_config(const Call& call);     // GET /machine-config
Response put_machine_config(const Call& call);     // PUT /machine-config
Response patch_machine_config(const Call& call);   // PATCH /machine-config
Response put_boot_source(const Call& call);        // PUT /boot-source
Response put_drive(const Call& call);              // PUT /drives/{drive_id}
Response put_network_interface(const Call& call);  // PUT /network-interfaces/{iface_id}
Response put_action(const Call& call);             // PUT /actions
Response patch_vm(const Call& call);               // PATCH /vm
Response get_vm_config(const Call& call);          // GET /vm/config
Response put_snapshot_create(const Call& call);    // PUT /snapshot/create
Response put_snapshot_load(const Call& call);      // PUT /snapshot/load
Response put_container(const Call& call);          // PUT /microvm/container
Response put_console(const Call& call);            // PUT /microvm/console
Response get_status(const Call& call);             // GET /microvm/status
Response get_metrics(const Call& call);            // GET /microvm/metrics

}  // namespace microvm::api
