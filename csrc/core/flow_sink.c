#include "flow_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "write_behind.h"

int sink_file_name(const struct flow_sink *sink, const char *label, uint32_t use_number, char *out, size_t size)
{
    int n = use_number > 1 ? snprintf(out, size, "%s_%u%s", label, use_number, sink->extension)
                           : snprintf(out, size, "%s%s", label, sink->extension);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Tells the tracer's error what failed on name, from errno. Out of line: a
 * failure path, and inlined gcc counts a name buffer as long as a path. */
static __attribute__((noinline)) void set_error(struct flow_sink *sink, const char *what, const char *name)
{
    sink->error->code = errno;
    snprintf(sink->error->message, sizeof sink->error->message, "%s", what);
    snprintf(sink->error->path, sizeof sink->error->path, "%s/%s", sink->directory, name);
}

int sink_init(struct flow_sink *sink, const struct tracer_config *config, struct tracer_error *error,
              struct flow_identity (*identify)(const void *owner, uint32_t slot), const void *owner)
{
    memset(sink, 0, sizeof *sink);
    sink->writes = config->write_pcap;
    sink->directory = config->directory;
    sink->extension = config->extension ? config->extension : "";
    sink->directory_fd = sink->fallback_fd = sink->journal_fd = -1;
    sink->layout = config->layout;
    sink->max_open_files = config->max_open_files;
    sink->flush_bytes = config->flush_bytes;
    sink->max_pending_bytes = config->max_pending_bytes;
    sink->lru_newest = sink->lru_oldest = TRACER_NO_SLOT;
    sink->error = error;
    sink->identify = identify;
    sink->owner = owner;
    if (!sink->writes)
        return 0;
    /* every flow file is created relative to this descriptor, so a later
     * chdir() or a renamed path cannot send frames somewhere else */
    sink->directory_fd = open(sink->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sink->directory_fd < 0) {
        error->code = errno;
        snprintf(error->message, sizeof error->message, "cannot open output directory");
        snprintf(error->path, sizeof error->path, "%s", sink->directory);
        return -1;
    }
    return 0;
}

int sink_reserve(struct flow_sink *sink, uint32_t capacity)
{
    if (capacity <= sink->file_capacity)
        return 0;
    struct flow_file *files = realloc(sink->files, capacity * sizeof *files);
    if (!files)
        return -1;
    sink->files = files;
    while (sink->file_capacity < capacity)
        sink_start_flow(sink, sink->file_capacity++);
    return 0;
}

void sink_start_flow(struct flow_sink *sink, uint32_t slot)
{
    sink->files[slot] = (struct flow_file){.fd = -1, .lru_newer = TRACER_NO_SLOT, .lru_older = TRACER_NO_SLOT};
}

/* ---- the least-recently-used list of flows holding a descriptor ---- */

static void lru_unlink(struct flow_sink *sink, uint32_t slot)
{
    struct flow_file *f = &sink->files[slot];
    if (f->lru_newer != TRACER_NO_SLOT)
        sink->files[f->lru_newer].lru_older = f->lru_older;
    else
        sink->lru_newest = f->lru_older;
    if (f->lru_older != TRACER_NO_SLOT)
        sink->files[f->lru_older].lru_newer = f->lru_newer;
    else
        sink->lru_oldest = f->lru_newer;
    f->lru_newer = f->lru_older = TRACER_NO_SLOT;
}

static void lru_push_newest(struct flow_sink *sink, uint32_t slot)
{
    struct flow_file *f = &sink->files[slot];
    f->lru_older = sink->lru_newest;
    f->lru_newer = TRACER_NO_SLOT;
    if (sink->lru_newest != TRACER_NO_SLOT)
        sink->files[sink->lru_newest].lru_newer = slot;
    sink->lru_newest = slot;
    if (sink->lru_oldest == TRACER_NO_SLOT)
        sink->lru_oldest = slot;
}

static void close_descriptor(struct flow_sink *sink, uint32_t slot)
{
    struct flow_file *f = &sink->files[slot];
    if (f->fd < 0)
        return;
    close(f->fd);
    f->fd = -1;
    sink->open_files--;
    lru_unlink(sink, slot);
}

void sink_close_files(struct flow_sink *sink)
{
    while (sink->lru_oldest != TRACER_NO_SLOT)
        close_descriptor(sink, sink->lru_oldest);
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
        if (fd >= 0 || errno != EEXIST || (flags & O_EXCL))
            return fd; /* O_EXCL asked for: an existing file is never replaced */
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

/* Opens name in directory_fd (the output directory or the fallback) with
 * open_regular's flags; never follows a symbolic link. */
static int open_in(struct flow_sink *sink, int directory_fd, const char *name, int flags)
{
    int fd = open_regular(directory_fd, name, flags);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE) && sink->open_files > 0) {
        /* the process ran out of descriptors: give ours back and try once more */
        sink_close_files(sink);
        fd = open_regular(directory_fd, name, flags);
    }
    return fd;
}

/* Opens name in the output directory for appending, creating or truncating
 * it when `create` is set. */
static int open_in_directory(struct flow_sink *sink, const char *name, int create)
{
    return open_in(sink, sink->directory_fd, name, open_flags(create));
}

/* The directory a flow's file is in. */
static int file_directory(const struct flow_sink *sink, const struct flow_file *f)
{
    return f->displaced ? sink->fallback_fd : sink->directory_fd;
}

int sink_claim(struct flow_sink *sink, const char *fallback, const char *journal)
{
    const char *failed = fallback;
    sink->fallback_fd = open(fallback, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sink->fallback_fd >= 0) {
        failed = journal;
        sink->journal_fd = open(journal, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0666);
    }
    if (sink->journal_fd >= 0)
        return 0;
    sink->error->code = errno;
    snprintf(sink->error->message, sizeof sink->error->message, "cannot open for claiming file names");
    snprintf(sink->error->path, sizeof sink->error->path, "%s", failed);
    if (sink->fallback_fd >= 0)
        close(sink->fallback_fd);
    sink->fallback_fd = -1;
    return -1;
}

/* Claim mode, a new file: made in the output directory if its name is free
 * there (and the name written to the journal), else in the fallback. */
static int claim(struct flow_sink *sink, struct flow_file *f, const char *name)
{
    int fd = open_in(sink, sink->directory_fd, name, open_flags(1) | O_EXCL);
    if (fd < 0 && errno == EEXIST) {
        f->displaced = 1;
        return open_in(sink, sink->fallback_fd, name, open_flags(1));
    }
    if (fd < 0)
        return -1;
    char line[NAME_MAX + 2];
    size_t length = strlen(name);
    memcpy(line, name, length);
    line[length] = '\n';
    ssize_t written;
    do
        written = write(sink->journal_fd, line, length + 1);
    while (written < 0 && errno == EINTR);
    if (written == (ssize_t)(length + 1))
        return fd;
    if (written >= 0)
        errno = ENOSPC;
    close(fd);
    return -1;
}

/* Makes sure the flow's file is open (creating it, empty, on first use),
 * evicting the least recently used descriptor if needed. */
static int ensure_open(struct flow_sink *sink, uint32_t slot)
{
    struct flow_file *f = &sink->files[slot];
    if (f->fd >= 0) {
        if (sink->lru_newest != slot) {
            lru_unlink(sink, slot);
            lru_push_newest(sink, slot);
        }
        return 0;
    }
    while (sink->open_files >= sink->max_open_files && sink->lru_oldest != TRACER_NO_SLOT)
        close_descriptor(sink, sink->lru_oldest);

    struct flow_identity flow = sink->identify(sink->owner, slot);
    char name[LABEL_MAX + 32];
    if (sink_file_name(sink, flow.label, flow.use_number, name, sizeof name) < 0) {
        errno = ENAMETOOLONG;
        set_error(sink, "cannot name output file", flow.label);
        return -1;
    }
    int fd = sink->fallback_fd >= 0 && !f->exists ? claim(sink, f, name)
                                                   : open_in(sink, file_directory(sink, f), name, open_flags(!f->exists));
    if (fd < 0) {
        set_error(sink, flow_file_open_failure(errno), name);
        return -1;
    }
    f->fd = fd;
    sink->open_files++;
    lru_push_newest(sink, slot);
    if (f->exists)
        sink->counts.file_reopens++;
    else
        sink->counts.files_created++;
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

/* Frees the flow's buffer and what was pending in it. */
static void free_buffer(struct flow_sink *sink, struct flow_file *f)
{
    sink->buffered_bytes -= f->pending_capacity;
    free(f->pending);
    f->pending = NULL;
    f->pending_length = f->pending_capacity = 0;
}

int sink_flush(struct flow_sink *sink, uint32_t slot)
{
    struct flow_file *f = &sink->files[slot];
    if (f->exists && f->pending_length == 0)
        return 0;
    int created = !f->exists;
    if (ensure_open(sink, slot) < 0)
        return -1;
    struct flow_identity flow = sink->identify(sink->owner, slot);
    char name[LABEL_MAX + 32];
    sink_file_name(sink, flow.label, flow.use_number, name, sizeof name);
    /* The global header goes out with the first frames, when the file is
     * created, so a flow without frames holds no buffer. An existing file
     * whose directory entry is gone (the output directory deleted under us)
     * would swallow the frames: say so instead. */
    uint8_t header[PCAP_GLOBAL_HEADER_SIZE];
    off_t size_before = 0;
    if (created && !sink->raw) {
        pcap_write_global_header(&sink->layout, flow.linktype, header);
    } else {
        struct stat info;
        if (fstat(f->fd, &info) < 0 || info.st_nlink == 0) {
            if (errno == 0 || info.st_nlink == 0)
                errno = ENOENT;
            set_error(sink, "output file was deleted", name);
            close_descriptor(sink, slot);
            return -1;
        }
        size_before = info.st_size;
    }
    if (flow_file_write_two(f->fd, header, created && !sink->raw ? sizeof header : 0, f->pending, f->pending_length) < 0) {
        /* cut the file back to its last complete record (or remove a file
         * just made) and keep the whole buffer: the file stays readable, and
         * a later flush (after space was freed, say) writes the frames */
        int saved = errno;
        if (created && !(sink->journal_fd >= 0 && !f->displaced))
            unlinkat(file_directory(sink, f), name, 0);
        else if (ftruncate(f->fd, size_before) < 0) {
            /* nothing better to do: the error below still names the file */
        }
        errno = saved;
        set_error(sink, "cannot write output file", name);
        close_descriptor(sink, slot);
        return -1;
    }
    f->exists = 1;
    sink->counts.file_writes++;
    /* the buffer goes back, whatever its size: an idle flow holds none */
    free_buffer(sink, f);
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
static int flush_largest(struct flow_sink *sink)
{
    sink->counts.budget_flushes++;
    size_t count = 0;
    for (uint32_t slot = 0; slot < sink->file_capacity; slot++)
        count += sink->files[slot].pending_length > 0;
    struct pending_entry *entries = malloc(count * sizeof *entries);
    if (!entries) {
        int status = 0; /* no memory to choose: write everything */
        for (uint32_t slot = 0; slot < sink->file_capacity; slot++)
            if (sink->files[slot].pending_length > 0 && sink_flush(sink, slot) < 0)
                status = -1;
        return status;
    }
    count = 0;
    for (uint32_t slot = 0; slot < sink->file_capacity; slot++)
        if (sink->files[slot].pending_length > 0)
            entries[count++] = (struct pending_entry){sink->files[slot].pending_length, slot};
    qsort(entries, count, sizeof *entries, larger_first);
    int status = 0;
    for (size_t i = 0; i < count && sink->buffered_bytes > sink->max_pending_bytes / 2; i++)
        if (sink_flush(sink, entries[i].slot) < 0)
            status = -1;
    free(entries);
    return status;
}

/* Makes room in the flow's buffer for first + second more bytes. Changes
 * nothing when it cannot (the buffer would pass 32 bits, or memory). */
static int reserve(struct flow_sink *sink, uint32_t slot, size_t first, size_t second)
{
    struct flow_file *f = &sink->files[slot];
    size_t room = UINT32_MAX - f->pending_length;
    if (first > room || second > room - first) {
        errno = EOVERFLOW;
        set_error(sink, "frame too large", sink->identify(sink->owner, slot).label);
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
        set_error(sink, "out of memory", "");
        return -1;
    }
    sink->buffered_bytes += capacity - f->pending_capacity;
    f->pending = grown;
    f->pending_capacity = (uint32_t)capacity;
    return 0;
}

/* Queues first then second, both or neither. */
static int queue_two(struct flow_sink *sink, uint32_t slot, const void *first, size_t first_length, const void *second,
                     size_t second_length)
{
    /* room for both parts first, so that a record is queued whole or not at all */
    if (reserve(sink, slot, first_length, second_length) < 0)
        return -1;
    struct flow_file *f = &sink->files[slot];
    if (first_length)
        memcpy(f->pending + f->pending_length, first, first_length);
    if (second_length)
        memcpy(f->pending + f->pending_length + first_length, second, second_length);
    f->pending_length += (uint32_t)(first_length + second_length);
    if (f->pending_length >= sink->flush_bytes && sink_flush(sink, slot) < 0)
        return TRACER_QUEUED_UNWRITTEN;
    if (sink->buffered_bytes >= sink->max_pending_bytes && flush_largest(sink) < 0)
        return TRACER_QUEUED_UNWRITTEN;
    return 0;
}

int sink_queue_bytes(struct flow_sink *sink, uint32_t slot, const uint8_t *data, size_t length)
{
    return queue_two(sink, slot, data, length, NULL, 0);
}

void sink_release(struct flow_sink *sink, uint32_t slot)
{
    struct flow_file *f = &sink->files[slot];
    close_descriptor(sink, slot);
    free_buffer(sink, f);
    f->exists = 0;
}

int sink_finish(struct flow_sink *sink, uint32_t slot)
{
    struct flow_file *f = &sink->files[slot];
    if (!sink->behind || f->exists || f->fd >= 0)
        return sink_flush(sink, slot);
    struct flow_identity flow = sink->identify(sink->owner, slot);
    struct write_job job = {.name = malloc(LABEL_MAX + 32), .bytes = f->pending, .length = f->pending_length};
    if (!job.name || sink_file_name(sink, flow.label, flow.use_number, job.name, LABEL_MAX + 32) < 0) {
        free(job.name);
        return sink_flush(sink, slot); /* reports the problem itself */
    }
    pcap_write_global_header(&sink->layout, flow.linktype, job.header);
    /* the job owns the records now (the write-behind queue counts them) */
    sink->buffered_bytes -= f->pending_capacity;
    f->pending = NULL;
    f->pending_length = f->pending_capacity = 0;
    f->exists = 1;
    sink->counts.files_created++;
    sink->counts.file_writes++;
    /* on trouble, stop the workers; the rest of the capture is written here */
    return write_behind_submit(sink->behind, job) != 0 ? sink_finish_writers(sink) : 0;
}

int sink_start_writers(struct flow_sink *sink, int threads)
{
    if (!sink->writes || sink->raw || sink->behind || threads < 1 || sink->fallback_fd >= 0)
        return 0;
    /* queued records count against the same budget as buffered ones, roughly:
     * a quarter of it, and no more than 8 MiB (a quarter of the default
     * budget): a longer queue would only hold memory, the writers go no faster */
    uint64_t queue_bytes = sink->max_pending_bytes / 4;
    if (queue_bytes > TRACER_DEFAULT_BUDGET / 4)
        queue_bytes = TRACER_DEFAULT_BUDGET / 4;
    sink->behind = write_behind_start(sink->directory_fd, threads, (size_t)queue_bytes);
    if (!sink->behind) {
        set_error(sink, "cannot start output threads", "");
        return -1;
    }
    return 0;
}

/* A background job the workers could not do for want of a descriptor,
 * written by the tracer, which can give its own descriptors back. */
static int write_job_here(struct flow_sink *sink, const struct write_job *job)
{
    int fd = open_in_directory(sink, job->name, 1);
    if (fd < 0) {
        set_error(sink, flow_file_open_failure(errno), job->name);
        return -1;
    }
    if (write_job_into(sink->directory_fd, fd, job) < 0) {
        set_error(sink, "cannot write output file", job->name);
        return -1;
    }
    return 0;
}

int sink_finish_writers(struct flow_sink *sink)
{
    if (!sink->behind)
        return 0;
    struct write_failure failure;
    struct write_job *deferred;
    size_t deferred_count;
    int status = write_behind_finish(sink->behind, &failure, &deferred, &deferred_count);
    sink->behind = NULL;
    if (status < 0) {
        errno = failure.code;
        set_error(sink, failure.message, failure.name);
    }
    for (size_t i = 0; i < deferred_count; i++) {
        if (status == 0 && write_job_here(sink, &deferred[i]) < 0)
            status = -1;
        free(deferred[i].name);
        free(deferred[i].bytes);
    }
    free(deferred);
    return status;
}

int sink_append(struct flow_sink *sink, const char *label, uint32_t use_number, const struct pcap_record *record,
                const uint8_t *data, size_t length)
{
    char name[LABEL_MAX + 32];
    if (sink_file_name(sink, label, use_number, name, sizeof name) < 0) {
        errno = ENAMETOOLONG;
        set_error(sink, "cannot name output file", label);
        return -1;
    }
    return sink_append_named(sink, name, 0, 0, record, data, length);
}

int sink_append_named(struct flow_sink *sink, const char *name, int create, uint32_t linktype,
                      const struct pcap_record *record, const uint8_t *data, size_t length)
{
    uint8_t header[PCAP_GLOBAL_HEADER_SIZE + PCAP_RECORD_HEADER_SIZE];
    size_t header_length = create ? sizeof header : PCAP_RECORD_HEADER_SIZE;
    if (create)
        pcap_write_global_header(&sink->layout, linktype, header);
    if (pcap_write_record_header(&sink->layout, record, header + header_length - PCAP_RECORD_HEADER_SIZE) < 0) {
        char message[96];
        snprintf(message, sizeof message, "time %lld s does not fit in 32 bits (a pcap file's unsigned seconds)",
                 (long long)record->ts_sec);
        errno = EOVERFLOW;
        set_error(sink, record->ts_sec > UINT32_MAX ? message : "record field does not fit in 32 bits", name);
        return -1;
    }
    /* in claim mode such files (another link type's frames) are not flows': the fallback takes them */
    int fd = open_in(sink, sink->fallback_fd >= 0 ? sink->fallback_fd : sink->directory_fd, name, open_flags(create));
    if (fd < 0) {
        set_error(sink, flow_file_open_failure(errno), name);
        return -1;
    }
    /* the record goes whole or not at all: a short write is cut back off */
    struct stat info;
    off_t size_before = fstat(fd, &info) == 0 ? info.st_size : -1;
    int status = flow_file_write_two(fd, header, header_length, data, length) < 0;
    if (status) {
        int saved = errno;
        if (size_before >= 0 && ftruncate(fd, size_before) < 0) {
            /* nothing better to do: the error below still names the file */
        }
        errno = saved;
        set_error(sink, "cannot write output file", name);
    } else {
        sink->counts.files_created += (uint64_t)(create != 0);
        sink->counts.file_reopens += (uint64_t)(create == 0);
        sink->counts.file_writes++;
    }
    close(fd);
    return status ? -1 : 0;
}

void sink_drop_pending(struct flow_sink *sink, uint32_t slot)
{
    free_buffer(sink, &sink->files[slot]);
    sink->files[slot].exists = 1; /* nothing more to create: a failed file is not made again */
}

int sink_queue(struct flow_sink *sink, uint32_t slot, const struct pcap_record *record, const uint8_t *data,
               size_t length)
{
    uint8_t header[PCAP_RECORD_HEADER_SIZE];
    if (pcap_write_record_header(&sink->layout, record, header) < 0) {
        *sink->error = (struct tracer_error){.code = 0};
        if (record->ts_sec > UINT32_MAX) /* (int64_t): a pcapng time before 1970 */
            snprintf(sink->error->message, sizeof sink->error->message,
                     "time %lld s does not fit in 32 bits (a pcap file's unsigned seconds: 1970 to 2106)",
                     (long long)record->ts_sec);
        else
            snprintf(sink->error->message, sizeof sink->error->message,
                     "a pcap record field (ts_sec, ts_usec, incl_len or orig_len) does not fit in 32 bits");
        return -1;
    }
    return queue_two(sink, slot, header, sizeof header, data, length);
}

void sink_free(struct flow_sink *sink)
{
    sink_finish_writers(sink);
    for (uint32_t slot = 0; slot < sink->file_capacity; slot++)
        sink_release(sink, slot);
    if (sink->writes && sink->directory_fd >= 0) /* else never opened (a zeroed sink has 0) */
        close(sink->directory_fd);
    if (sink->writes && sink->fallback_fd >= 0) {
        close(sink->fallback_fd);
        close(sink->journal_fd);
    }
    sink->fallback_fd = sink->journal_fd = -1;
    free(sink->files);
    sink->files = NULL;
    sink->file_capacity = 0;
    sink->directory_fd = -1;
}
