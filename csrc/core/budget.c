/* How much output a whole-capture trace may hold in memory (see
 * tracer_choose_budget in tracer.h).
 *
 * With many flows open at once the budget decides how often each file is
 * written: once it fills, the largest buffers go out, and a file written
 * before its flow ends is opened, appended to and closed again later. A
 * budget that holds the whole capture writes every file once, when its flow
 * ends (mostly from the background writers). Memory is what limits it: the
 * buffers really take up to twice the bytes counted (they grow by doubling),
 * and the background writers' queue takes up to a quarter more, so an eighth
 * of what is available keeps the process well inside it. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pcapflow_core.h"

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* The first number in a file (a kernel counter), or 0 when there is none
 * ("max", no such file). */
static uint64_t read_number(const char *path)
{
    FILE *file = fopen(path, "re");
    if (!file)
        return 0;
    uint64_t value = 0;
    if (fscanf(file, "%" SCNu64, &value) != 1)
        value = 0;
    fclose(file);
    return value;
}

/* MemAvailable: what can be allocated without swapping, page cache that can
 * be dropped included. */
static uint64_t meminfo_available(void)
{
    FILE *file = fopen("/proc/meminfo", "re");
    uint64_t kib = 0;
    if (file) {
        char line[256];
        while (fgets(line, sizeof line, file))
            if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kib) == 1)
                break;
        fclose(file);
    }
    if (kib)
        return kib * 1024;
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

/* Room left under the memory limits of the process's cgroup and of every
 * cgroup above it (cgroup v2, or v1's memory controller); UINT64_MAX when
 * none is set or none can be read. */
static uint64_t cgroup_room(void)
{
    uint64_t room = UINT64_MAX;
    FILE *file = fopen("/proc/self/cgroup", "re");
    if (!file)
        return room;
    char line[4096];
    while (fgets(line, sizeof line, file)) {
        /* "0::/path" (v2) or "4:memory:/path" (v1) */
        char *controllers = strchr(line, ':');
        char *path = controllers ? strchr(controllers + 1, ':') : NULL;
        if (!path)
            continue;
        *path++ = '\0';
        controllers++;
        path[strcspn(path, "\n")] = '\0';
        int v2 = strcmp(line, "0") == 0 && *controllers == '\0';
        int v1 = !v2 && strstr(controllers, "memory") != NULL;
        if (!v1 && !v2)
            continue;
        const char *root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
        const char *limit_name = v2 ? "memory.max" : "memory.limit_in_bytes";
        const char *usage_name = v2 ? "memory.current" : "memory.usage_in_bytes";
        /* from the process's own group up to the root */
        for (;;) {
            char limit_path[4200], usage_path[4200];
            snprintf(limit_path, sizeof limit_path, "%s%s/%s", root, path, limit_name);
            snprintf(usage_path, sizeof usage_path, "%s%s/%s", root, path, usage_name);
            uint64_t limit = read_number(limit_path);
            if (limit) {
                uint64_t usage = read_number(usage_path);
                room = min_u64(room, limit > usage ? limit - usage : 0);
            }
            char *slash = strrchr(path, '/');
            if (!slash || slash == path)
                break;
            *slash = '\0';
        }
    }
    fclose(file);
    return room;
}

/* Room left under RLIMIT_AS; UINT64_MAX when there is no limit. */
static uint64_t address_space_room(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_AS, &limit) < 0 || limit.rlim_cur == RLIM_INFINITY)
        return UINT64_MAX;
    uint64_t pages = 0;
    FILE *file = fopen("/proc/self/statm", "re");
    if (file) {
        if (fscanf(file, "%" SCNu64, &pages) != 1)
            pages = 0;
        fclose(file);
    }
    uint64_t used = pages * (uint64_t)sysconf(_SC_PAGESIZE);
    return (uint64_t)limit.rlim_cur > used ? (uint64_t)limit.rlim_cur - used : 0;
}

uint64_t tracer_available_memory(void)
{
    uint64_t available = meminfo_available();
    if (!available)
        return 0;
    return min_u64(available, min_u64(cgroup_room(), address_space_room()));
}

uint64_t tracer_choose_budget(uint64_t capture_bytes, uint64_t limit)
{
    uint64_t available = tracer_available_memory();
    uint64_t budget = available ? available / 8 : TRACER_DEFAULT_BUDGET;
    if (budget < TRACER_LEAST_BUDGET)
        budget = TRACER_LEAST_BUDGET;
    budget = min_u64(budget, capture_bytes ? min_u64(capture_bytes, UINT64_MAX / 4) * 4 : TRACER_STREAM_BUDGET);
    if (limit)
        budget = min_u64(budget, limit);
    /* a 32-bit process cannot hold more whatever the machine has */
    budget = min_u64(budget, (uint64_t)(SIZE_MAX / 4));
    /* the smallest budget a tracer takes (a tiny capture never fills it) */
    return budget < 4096 && (!limit || limit >= 4096) ? 4096 : budget;
}
