/*
 * edge-sed instruction counter with guest markers: a QEMU TCG plugin (QEMU 7.x plugin API,
 * built by firmware_sim/pi_root.py against the qemu-plugin.h of Debian's qemu source package).
 *
 * Counts every executed guest instruction (an inline add of the block's instruction count at
 * the start of each translated block, as QEMU's tests/plugin/bb.c does; a block that exits early,
 * e.g. an exclusive-access restart, is counted whole: tests/test_pi_sim.py finds the total within
 * 1e-6 of QEMU's per-instruction insn plugin). A guest marks a point
 * in its run with a system call that cannot succeed: lseek(MARK_FD, tag, 0) (EBADF). On each
 * such call the plugin writes "tag count" to the file named by the plugin argument out=PATH, so
 * the host can subtract counts between marks: the cost of exactly the code between two marks,
 * without the interpreter's start-up. At exit it writes "total count".
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define MARK_FD ((uint64_t)(int64_t)-1517) /* lseek's fd argument, as the syscall sees it */
#define NR_LSEEK_AARCH64 62

static uint64_t insn_count;
static FILE *out;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insn_count,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    if (num == NR_LSEEK_AARCH64 && a1 == MARK_FD) {
        fprintf(out, "%" PRIu64 " %" PRIu64 "\n", a2, insn_count);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    fprintf(out, "total %" PRIu64 "\n", insn_count);
    fclose(out);
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        }
    }
    if (!path) {
        fprintf(stderr, "edge-sed marks plugin: needs the argument out=PATH\n");
        return -1;
    }
    out = fopen(path, "w");
    if (!out) {
        perror(path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
