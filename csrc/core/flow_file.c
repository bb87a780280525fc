#include "flow_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tracer_internal.h"
#include "write_behind.h"

int flow_file_name(const struct tracer *tr, const char *label, uint32_t use_number, char *out,
                   size_t size)
{
    int n = use_number > 1 ? snprintf(out, size, "%s_%u%s", label, use_number, tr->extension)
                           : snprintf(out, size, "%s%s", label, tr->extension);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

void flow_file_set_error(struct tracer *tr, const char *what, const char *name)
{
    tr->error.code = errno;
    snprintf(tr->error.message, sizeof tr->error.message, "%s", what);
    snprintf(tr->error.path, sizeof tr->error.path, "%s/%s", tr->directory, name);
}

int flow_file_write_all(int fd, const uint8_t *bytes, size_t length)
{
    while (length > 0) {
        ssize_t n = write(fd, bytes, length);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

/* ---- the least-recently-used list of flows holding a descriptor ---- */

static struct flow *flow_at(struct tracer *tr, uint32_t slot) { return &tr->flows[slot]; }

static void lru_unlink(struct tracer *tr, uint32_t slot)
{
    struct flow_file *f = &flow_at(tr, slot)->file;
    if (f->lru_newer != TRACER_NO_SLOT)
        flow_at(tr, f->lru_newer)->file.lru_older = f->lru_older;
    else
        tr->lru_newest = f->lru_older;
    if (f->lru_older != TRACER_NO_SLOT)
        flow_at(tr, f->lru_older)->file.lru_newer = f->lru_newer;
    else
        tr->lru_oldest = f->lru_newer;
    f->lru_newer = f->lru_older = TRACER_NO_SLOT;
}

static void lru_push_newest(struct tracer *tr, uint32_t slot)
{
    struct flow_file *f = &flow_at(tr, slot)->file;
    f->lru_older = tr->lru_newest;
    f->lru_newer = TRACER_NO_SLOT;
    if (tr->lru_newest != TRACER_NO_SLOT)
        flow_at(tr, tr->lru_newest)->file.lru_newer = slot;
    tr->lru_newest = slot;
    if (tr->lru_oldest == TRACER_NO_SLOT)
        tr->lru_oldest = slot;
}

static void close_descriptor(struct tracer *tr, uint32_t slot)
{
    struct flow_file *f = &flow_at(tr, slot)->file;
    if (f->fd < 0)
        return;
    close(f->fd);
    f->fd = -1;
    tr->open_files--;
    lru_unlink(tr, slot);
}

void tracer_close_files(struct tracer *tr)
{
    while (tr->lru_oldest != TRACER_NO_SLOT)
        close_descriptor(tr, tr->lru_oldest);
}

/* Opens name, accepting only a regular file. A new file is made with
 * O_EXCL, so it is regular by construction. An existing one is replaced (an
 * earlier run's, truncated as pcapkit does) only if it is ours: a regular
 * file owned by the effective user with no other link. Anything else may be
 * planted: in a world-writable directory another user can create the
 * predictable name first (mode 0666) for a root run to write the capture
 * into, or link it to a file of ours elsewhere; it is refused with EEXIST and
 * left as it is. The checks are made on the open descriptor, before
 * truncating, so the name cannot be swapped in between. The existing file is
 * opened without O_CREAT (fs.protected_regular does not apply) and without
 * blocking (a FIFO planted at the path would wait for a reader forever).
 * O_NONBLOCK changes nothing for a regular file, so it stays set. */
static int open_regular(int directory_fd, const char *name, int flags)
{
    int truncate = flags & O_TRUNC;
    if (flags & O_CREAT) {
        int fd = openat(directory_fd, name, flags | O_EXCL, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    int fd = openat(directory_fd, name, (flags & ~(O_CREAT | O_TRUNC)) | O_NONBLOCK);
    if (fd < 0)
        return -1;
    struct stat info;
    int failure = fstat(fd, &info) < 0                               ? errno
                  : !S_ISREG(info.st_mode)                           ? EINVAL
                  : info.st_uid != geteuid() || info.st_nlink != 1 ? EEXIST
                  : truncate && ftruncate(fd, 0) < 0                 ? errno
                                                                     : 0;
    if (failure) {
        close(fd);
        errno = failure;
        return -1;
    }
    return fd;
}

const char *flow_file_open_failure(int code)
{
    return code == EEXIST ? "output file exists and is another user's or has other links; not replaced"
                          : "cannot open output file";
}

static int open_flags(int create)
{
    return O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0);
}

int flow_file_create_at(int directory_fd, const char *name) { return open_regular(directory_fd, name, open_flags(1)); }

int flow_file_open(struct tracer *tr, const char *name, int create)
{
    int flags = open_flags(create);
    int fd = open_regular(tr->directory_fd, name, flags);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && tr->open_files > 0) {
        /* the process ran out of descriptors: give ours back and try once more */
        tracer_close_files(tr);
        fd = open_regular(tr->directory_fd, name, flags);
    }
    return fd;
}

/* Makes sure the flow's file is open (creating it, empty, on first use),
 * evicting the least recently used descriptor if needed. */
static int ensure_open(struct tracer *tr, uint32_t slot)
{
    struct flow *flow = flow_at(tr, slot);
    struct flow_file *f = &flow->file;
    if (f->fd >= 0) {
        if (tr->lru_newest != slot) {
            lru_unlink(tr, slot);
            lru_push_newest(tr, slot);
        }
        return 0;
    }
    while (tr->open_files >= tr->config.max_open_files && tr->lru_oldest != TRACER_NO_SLOT)
        close_descriptor(tr, tr->lru_oldest);

    char name[LABEL_MAX + 32];
    if (flow_file_name(tr, flow->label, flow->use_number, name, sizeof name) < 0) {
        errno = ENAMETOOLONG;
        flow_file_set_error(tr, "cannot name output file", flow->label);
        return -1;
    }
    int fd = flow_file_open(tr, name, !f->exists);
    if (fd < 0) {
        flow_file_set_error(tr, flow_file_open_failure(errno), name);
        return -1;
    }
    f->fd = fd;
    tr->open_files++;
    lru_push_newest(tr, slot);
    if (f->exists)
        tr->counts.file_reopens++;
    else
        tr->counts.files_created++;
    return 0;
}

int flow_file_write_two(int fd, const uint8_t *first, size_t first_length, const uint8_t *second, size_t second_length)
{
    struct iovec parts[2] = {{(void *)first, first_length}, {(void *)second, second_length}};
    int index = first_length ? 0 : 1;
    while (index < 2) {
        ssize_t n = writev(fd, parts + index, 2 - index);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (size_t done = (size_t)n; index < 2 && done >= parts[index].iov_len; index++)
            done -= parts[index].iov_len, n = (ssize_t)done;
        if (index < 2) {
            parts[index].iov_base = (uint8_t *)parts[index].iov_base + n;
            parts[index].iov_len -= (size_t)n;
        }
    }
    return 0;
}

int flow_file_flush(struct tracer *tr, uint32_t slot)
{
    struct flow *flow = flow_at(tr, slot);
    struct flow_file *f = &flow->file;
    if (f->exists && f->pending_length == 0)
        return 0;
    int created = !f->exists;
    if (ensure_open(tr, slot) < 0)
        return -1;
    char name[LABEL_MAX + 32];
    flow_file_name(tr, flow->label, flow->use_number, name, sizeof name);
    /* The global header goes out with the first frames, when the file is
     * created, so a flow without frames holds no buffer. An existing file
     * whose directory entry is gone (the output directory deleted under us)
     * would swallow the frames: say so instead. */
    uint8_t header[PCAP_GLOBAL_HEADER_SIZE];
    off_t size_before = 0;
    if (created) {
        pcap_write_global_header(&tr->config.layout, flow->linktype, header);
    } else {
        struct stat info;
        if (fstat(f->fd, &info) < 0 || info.st_nlink == 0) {
            if (errno == 0 || info.st_nlink == 0)
                errno = ENOENT;
            flow_file_set_error(tr, "output file was deleted", name);
            close_descriptor(tr, slot);
            return -1;
        }
        size_before = info.st_size;
    }
    if (flow_file_write_two(f->fd, header, created ? sizeof header : 0, f->pending, f->pending_length) < 0) {
        /* cut the file back to its last complete record (or remove a file
         * just made) and keep the whole buffer: the file stays readable, and
         * a later flush (after space was freed, say) writes the frames */
        int saved = errno;
        if (created)
            unlinkat(tr->directory_fd, name, 0);
        else if (ftruncate(f->fd, size_before) < 0) {
            /* nothing better to do: the error below still names the file */
        }
        errno = saved;
        flow_file_set_error(tr, "cannot write output file", name);
        close_descriptor(tr, slot);
        return -1;
    }
    f->exists = 1;
    tr->counts.file_writes++;
    tr->pending_bytes -= f->pending_length;
    f->pending_length = 0;
    /* large buffers are returned so that idle flows hold little memory */
    if (f->pending_capacity > 4096) {
        free(f->pending);
        f->pending = NULL;
        f->pending_capacity = 0;
    }
    return 0;
}

struct pending_entry {
    uint32_t length;
    uint32_t slot;
};

static int larger_first(const void *a, const void *b)
{
    uint32_t x = ((const struct pending_entry *)a)->length, y = ((const struct pending_entry *)b)->length;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* All buffers together passed the budget: write the largest ones until half
 * of it is free. Flows with little pending stay buffered, so with many open
 * flows each file is opened fewer times than if every buffer were written. */
static int flush_largest(struct tracer *tr)
{
    tr->counts.budget_flushes++;
    struct pending_entry *entries = malloc((size_t)tr->open_count * sizeof *entries);
    if (!entries) {
        int status = 0; /* no memory to choose: write everything */
        for (uint32_t slot = tr->open_first; slot != TRACER_NO_SLOT; slot = tr->flows[slot].open_next)
            if (tr->flows[slot].file.pending_length > 0 && flow_file_flush(tr, slot) < 0)
                status = -1;
        return status;
    }
    size_t count = 0;
    for (uint32_t slot = tr->open_first; slot != TRACER_NO_SLOT; slot = tr->flows[slot].open_next)
        if (tr->flows[slot].file.pending_length > 0)
            entries[count++] = (struct pending_entry){tr->flows[slot].file.pending_length, slot};
    qsort(entries, count, sizeof *entries, larger_first);
    int status = 0;
    for (size_t i = 0; i < count && tr->pending_bytes > tr->config.max_pending_bytes / 2; i++)
        if (flow_file_flush(tr, entries[i].slot) < 0)
            status = -1;
    free(entries);
    return status;
}

/* Makes room in the flow's buffer for first + second more bytes. Changes
 * nothing when it cannot (the buffer would pass 32 bits, or memory). */
static int reserve(struct tracer *tr, uint32_t slot, size_t first, size_t second)
{
    struct flow_file *f = &flow_at(tr, slot)->file;
    size_t room = UINT32_MAX - f->pending_length;
    if (first > room || second > room - first) {
        errno = EOVERFLOW;
        flow_file_set_error(tr, "frame too large", flow_at(tr, slot)->label);
        return -1;
    }
    size_t needed = (size_t)f->pending_length + first + second;
    if (needed <= f->pending_capacity)
        return 0;
    size_t capacity = f->pending_capacity ? f->pending_capacity : 256;
    while (capacity < needed)
        capacity = capacity > UINT32_MAX / 2 ? UINT32_MAX : capacity * 2;
    uint8_t *grown = realloc(f->pending, capacity);
    if (!grown) {
        errno = ENOMEM;
        flow_file_set_error(tr, "out of memory", "");
        return -1;
    }
    f->pending = grown;
    f->pending_capacity = (uint32_t)capacity;
    return 0;
}

int flow_file_queue(struct tracer *tr, uint32_t slot, const void *first, size_t first_length, const void *second,
                    size_t second_length)
{
    /* room for both parts first, so that a record is queued whole or not at all */
    if (reserve(tr, slot, first_length, second_length) < 0)
        return -1;
    struct flow_file *f = &flow_at(tr, slot)->file;
    if (first_length)
        memcpy(f->pending + f->pending_length, first, first_length);
    if (second_length)
        memcpy(f->pending + f->pending_length + first_length, second, second_length);
    f->pending_length += (uint32_t)(first_length + second_length);
    tr->pending_bytes += first_length + second_length;
    if (f->pending_length >= tr->config.flush_bytes && flow_file_flush(tr, slot) < 0)
        return TRACER_QUEUED_UNWRITTEN;
    if (tr->pending_bytes >= tr->config.max_pending_bytes && flush_largest(tr) < 0)
        return TRACER_QUEUED_UNWRITTEN;
    return 0;
}

void flow_file_release(struct tracer *tr, uint32_t slot)
{
    struct flow_file *f = &flow_at(tr, slot)->file;
    close_descriptor(tr, slot);
    tr->pending_bytes -= f->pending_length;
    free(f->pending);
    f->pending = NULL;
    f->pending_length = f->pending_capacity = 0;
    f->exists = 0;
}

int flow_file_finish(struct tracer *tr, uint32_t slot)
{
    struct flow *flow = flow_at(tr, slot);
    struct flow_file *f = &flow->file;
    if (!tr->behind || f->exists || f->fd >= 0)
        return flow_file_flush(tr, slot);
    struct write_job job = {.name = malloc(LABEL_MAX + 32), .bytes = f->pending, .length = f->pending_length};
    if (!job.name || flow_file_name(tr, flow->label, flow->use_number, job.name, LABEL_MAX + 32) < 0) {
        free(job.name);
        return flow_file_flush(tr, slot); /* reports the problem itself */
    }
    pcap_write_global_header(&tr->config.layout, flow->linktype, job.header);
    /* the job owns the records now */
    tr->pending_bytes -= f->pending_length;
    f->pending = NULL;
    f->pending_length = f->pending_capacity = 0;
    f->exists = 1;
    tr->counts.files_created++;
    tr->counts.file_writes++;
    /* on trouble, stop the workers; the rest of the capture is written here */
    return write_behind_submit(tr->behind, job) != 0 ? tracer_finish_write_behind(tr) : 0;
}

int tracer_start_write_behind(struct tracer *tr, int threads)
{
    if (!tr->config.write_pcap || tr->behind || threads < 1)
        return 0;
    /* queued records count against the same budget as buffered ones, roughly:
     * a quarter of it, and no more than 8 MiB (a quarter of the default
     * budget): a longer queue would only hold memory, the writers go no faster */
    uint64_t queue_bytes = tr->config.max_pending_bytes / 4;
    if (queue_bytes > TRACER_DEFAULT_BUDGET / 4)
        queue_bytes = TRACER_DEFAULT_BUDGET / 4;
    tr->behind = write_behind_start(tr->directory_fd, threads, (size_t)queue_bytes);
    if (!tr->behind) {
        flow_file_set_error(tr, "cannot start output threads", "");
        return -1;
    }
    return 0;
}

/* A background job the workers could not do for want of a descriptor,
 * written by the tracer, which can give its own descriptors back. */
static int write_job_here(struct tracer *tr, const struct write_job *job)
{
    int fd = flow_file_open(tr, job->name, 1);
    if (fd < 0) {
        flow_file_set_error(tr, flow_file_open_failure(errno), job->name);
        return -1;
    }
    if (write_job_into(tr->directory_fd, fd, job) < 0) {
        flow_file_set_error(tr, "cannot write output file", job->name);
        return -1;
    }
    return 0;
}

int tracer_finish_write_behind(struct tracer *tr)
{
    if (!tr->behind)
        return 0;
    struct write_failure failure;
    struct write_job *deferred;
    size_t deferred_count;
    int status = write_behind_finish(tr->behind, &failure, &deferred, &deferred_count);
    tr->behind = NULL;
    if (status < 0) {
        errno = failure.code;
        flow_file_set_error(tr, failure.message, failure.name);
    }
    for (size_t i = 0; i < deferred_count; i++) {
        if (status == 0 && write_job_here(tr, &deferred[i]) < 0)
            status = -1;
        free(deferred[i].name);
        free(deferred[i].bytes);
    }
    free(deferred);
    return status;
}

int tracer_flush_all(struct tracer *tr)
{
    if (!tr->config.write_pcap)
        return 0;
    int status = 0;
    for (uint32_t slot = tr->open_first; slot != TRACER_NO_SLOT; slot = tr->flows[slot].open_next)
        if (flow_file_flush(tr, slot) < 0)
            status = -1;
    return status;
}

int tracer_append_to_closed(struct tracer *tr, const char *label, uint32_t use_number,
                            const struct pcap_record *record, const uint8_t *data, size_t length)
{
    uint8_t header[PCAP_RECORD_HEADER_SIZE];
    char name[LABEL_MAX + 32];
    if (flow_file_name(tr, label, use_number, name, sizeof name) < 0) {
        errno = ENAMETOOLONG;
        flow_file_set_error(tr, "cannot name output file", label);
        return -1;
    }
    if (pcap_write_record_header(&tr->config.layout, record, header) < 0) {
        errno = EOVERFLOW;
        flow_file_set_error(tr, "record field does not fit in 32 bits", name);
        return -1;
    }
    int fd = flow_file_open(tr, name, 0);
    if (fd < 0) {
        flow_file_set_error(tr, flow_file_open_failure(errno), name);
        return -1;
    }
    /* the record goes whole or not at all: a short write is cut back off */
    struct stat info;
    off_t size_before = fstat(fd, &info) == 0 ? info.st_size : -1;
    int status = flow_file_write_two(fd, header, sizeof header, data, length) < 0;
    if (status) {
        int saved = errno;
        if (size_before >= 0 && ftruncate(fd, size_before) < 0) {
            /* nothing better to do: the error below still names the file */
        }
        errno = saved;
        flow_file_set_error(tr, "cannot write output file", name);
    } else {
        tr->counts.file_reopens++;
        tr->counts.file_writes++;
    }
    close(fd);
    return status ? -1 : 0;
}

void tracer_drop_pending(struct tracer *tr, uint32_t slot)
{
    struct flow_file *f = &flow_at(tr, slot)->file;
    tr->pending_bytes -= f->pending_length;
    f->pending_length = 0;
    f->exists = 1; /* nothing more to create: a failed file is not made again */
}
