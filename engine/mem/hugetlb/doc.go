// Package hugetlb reads and sets the kernel's hugepage reservation through procfs: the
// persistent pool size in /proc/sys/vm/nr_hugepages and the HugePages_* counters in
// /proc/meminfo.
//
// What it owns: the text formats of those two files, and a reservation protocol (Reserve)
// that raises the pool by a number of pages and later lowers it by the same number, under
// an advisory file lock so that concurrent test binaries compose instead of clobbering
// each other's setting.
//
// Who may call it: engine/mem at domain setup (to say in its warning how many pages are
// missing), tests and tools. Setting the pool needs root.
//
// What it must never do: run on an I/O path (every call reads procfs), or leave the pool
// changed after Release (a test that reserves must restore the previous size).
//
// To reserve hugepages by hand, as root: sysctl -w vm.nr_hugepages=N (or
// echo N > /proc/sys/vm/nr_hugepages); to keep them across reboots, put vm.nr_hugepages=N
// in /etc/sysctl.d/. A sluice domain of S bytes needs S/2 MiB pages.
package hugetlb
