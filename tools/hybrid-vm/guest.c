/* SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The guest's programs for tools/hybrid-vm/make-capture.sh, static, run by the
 * guest's /init: a vsock server on port 52 (reads a line, answers it, waits for
 * the host's end), then a client of the host's port 53 (sends 2000 lines and
 * "end", reads the answer until the host closes). Neither side half-closes:
 * vhost-device-vsock turns a host's half-close into a full shutdown and does
 * not pass a guest's half-close to the host. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/vm_sockets.h>

static char buf[1 << 16];

static long read_line(int fd)
{
    long got = 0;
    while (got < (long)sizeof buf - 1 && read(fd, buf + got, 1) == 1)
        if (buf[got++] == '\n')
            break;
    buf[got] = 0;
    return got;
}

static long drain(int fd)
{
    long total = 0, n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        total += n;
    return total;
}

int main(void)
{
    struct sockaddr_vm any = { .svm_family = AF_VSOCK, .svm_port = 52, .svm_cid = VMADDR_CID_ANY };
    struct sockaddr_vm host = { .svm_family = AF_VSOCK, .svm_port = 53, .svm_cid = VMADDR_CID_HOST };
    char line[100];
    int lfd = socket(AF_VSOCK, SOCK_STREAM, 0);

    if (lfd < 0 || bind(lfd, (struct sockaddr *)&any, sizeof any) || listen(lfd, 4)) {
        perror("guest: listen on port 52");
        return 1;
    }
    printf("guest: listening on vsock port 52\n");
    fflush(stdout);
    int cfd = accept(lfd, NULL, NULL);
    long n = read_line(cfd);
    int len = snprintf(line, sizeof line, "guest got %ld bytes: ", n);
    write(cfd, line, len);
    write(cfd, buf, n);
    printf("guest: port 52 sent %ld bytes after its line\n", drain(cfd));
    close(cfd);

    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&host, sizeof host)) {
        perror("guest: connect to 2:53");
        return 1;
    }
    for (int i = 0; i < 2000; i++) {
        len = snprintf(line, sizeof line, "line %d from the guest\n", i);
        write(fd, line, len);
    }
    write(fd, "end\n", 4);
    n = read_line(fd);
    printf("guest: the host answered: %s", buf);
    close(fd);
    return 0;
}
