// Command sluice-agent sets up replication partnerships over a public network
// (US11233850). It is its own principal, on neither storage node, and runs in one of
// two roles:
//
//   - serve: the agent. Its portal takes a request naming the first node, its
//     credential (public key) and a criterion for the second node; it queries each
//     candidate's management plane (replication_get_node_info), picks the second node,
//     configures the proxy beside it (stores the credential, requests the port
//     translations public port + offset → base port + offset), then sends the
//     partnership to the second node (replication_partnership_create, listening) and
//     answers what the first node needs to dial (proxy address and host key, base port,
//     the second node's key). The agent never carries replication data.
//   - proxy: the proxy beside a second node: an SSH server per partnership on its public
//     port, admitting only the stored credential and opening only direct-tcpip channels
//     to the translated ports (engine/replication's Proxy), with an admin API for the
//     agent.
//
// request is a small client of the portal.
//
// main does flags and wiring only; the proxy's logic is engine/replication's.
package main
