// loopback TCP ping-pong floor: server on core 1, client on core 0; 128 B request, 100 B reply.
// usage: pp <server_spin 0|1> <client_spin 0|1> <seconds>
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <time.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
static int sspin, cspin, port;
static void pin(int c){cpu_set_t s;CPU_ZERO(&s);CPU_SET(c,&s);sched_setaffinity(0,sizeof s,&s);}
static int rd(int fd, char*b, int n, int spin){int got=0;while(got<n){int r=recv(fd,b+got,n-got,spin?MSG_DONTWAIT:0);if(r>0)got+=r;else if(r<0&&errno==EAGAIN)continue;else return -1;}return got;}
static void* srv(void*a){pin(1);int l=*(int*)a;int fd=accept(l,0,0);int one=1;setsockopt(fd,IPPROTO_TCP,TCP_NODELAY,&one,4);char b[128],r[100];memset(r,1,100);
 for(;;){if(rd(fd,b,128,sspin)<0)break;send(fd,r,100,0);}return 0;}
static long ns(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000L+t.tv_nsec;}
static int cmp(const void*a,const void*b){long x=*(long*)a,y=*(long*)b;return x<y?-1:x>y;}
int main(int c,char**v){sspin=atoi(v[1]);cspin=atoi(v[2]);int secs=atoi(v[3]);
 int l=socket(AF_INET,SOCK_STREAM,0);struct sockaddr_in a={0};a.sin_family=AF_INET;a.sin_addr.s_addr=htonl(0x7f000001);bind(l,(void*)&a,sizeof a);listen(l,1);socklen_t al=sizeof a;getsockname(l,(void*)&a,&al);
 pthread_t t;pthread_create(&t,0,srv,&l);pin(0);int fd=socket(AF_INET,SOCK_STREAM,0);connect(fd,(void*)&a,sizeof a);int one=1;setsockopt(fd,IPPROTO_TCP,TCP_NODELAY,&one,4);
 static long lat[5000000];int n=0;char b[128],r[100];memset(b,2,128);long end=ns()+secs*1000000000L;
 while(ns()<end&&n<5000000){long s=ns();send(fd,b,128,0);rd(fd,r,100,cspin);lat[n++]=ns()-s;}
 qsort(lat,n,sizeof(long),cmp);printf("server_spin=%d client_spin=%d n=%d p50=%.1fus p99=%.1fus p99.9=%.1fus\n",sspin,cspin,n,lat[n/2]/1e3,lat[n*99/100]/1e3,lat[n*999/1000]/1e3);return 0;}
