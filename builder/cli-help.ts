// The commands' help texts and the version.
import { readFileSync } from 'node:fs';

export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP: Record<string, string> = {
  main: `Usage: hoist COMMAND [OPTIONS]

A daemonless, rootless OCI image builder.

Commands:
  build     Build an image from a Dockerfile
  images    List images in the local store
  inspect   Show an image's manifest and config
  save      Write images to an OCI or docker-load tarball
  rmi       Remove image names from the local store
  load      Import images from an OCI image layout (directory or tarball)
  prune     Remove build cache and blobs no tagged image needs
  pull      Pull an image from a registry into the local store
  push      Push an image from the local store to a registry
  login     Save credentials for a registry (checked first)
  logout    Remove a registry's saved credentials

Global options:
  --root DIR   Store location (default $XDG_DATA_HOME/hoist)
  --version    Print the version
  -h, --help   Print help (also: hoist COMMAND --help)`,
  build: `Usage: hoist build [OPTIONS] CONTEXT

Build an image from a Dockerfile.

Options:
  -f, --file FILE          Dockerfile (default CONTEXT/Dockerfile; - reads standard input)
  -t, --tag REF            Name the image (repeatable)
      --build-arg K=V      Set a build-time variable (repeatable)
      --target STAGE       Build this stage
      --check, --call MODE Run BuildKit's build checks only (--call check), or build (--call build, default)
      --label K=V          Add a label to the image (repeatable)
      --platform P         Target platform, e.g. linux/amd64; several (repeatable, or comma-separated) make
                           one OCI index of an image each; RUN for another platform needs QEMU's binfmt_misc
      --no-cache           Do not use the build cache (results are still cached for later builds)
      --cache-from SPEC    Use a shared cache: type=registry,ref=REF (or just REF) | type=local,src=DIR (repeatable)
      --cache-to SPEC      Write the build's cache: type=registry,ref=REF | type=local,dest=DIR,
                           with mode=min (the final stage, default) or mode=max (every stage), and
                           mounts=true to carry RUN --mount=type=cache contents too
      --no-cache-filter S  Do not use the build cache in stage S (repeatable, or comma-separated)
      --build-context N=V  What FROM N and COPY --from=N mean: oci-layout://DIR[:TAG|@DIGEST] (a layout
                           directory or tarball), docker-image://REF, or a local directory (repeatable)
      --secret SPEC        id=ID,src=FILE or id=ID,env=VAR: a secret for RUN --mount=type=secret (repeatable)
      --ssh SPEC           default (the agent of SSH_AUTH_SOCK), ID=SOCKET or ID=KEY[,KEY]: an agent for
                           RUN --mount=type=ssh (repeatable)
      --timestamp SECONDS  Clamp times in the image to SECONDS since the epoch (default $SOURCE_DATE_EPOCH)
  -o, --output SPEC        type=image[,name=REF][,push=true] | type=registry,name=REF | type=oci,dest=F[,tar=false]
                           | type=docker,dest=F | type=local,dest=DIR | DIR | type=tar,dest=F | - (the file system
                           as a tarball on standard output; dest=- also for oci and docker). Other keys are refused
      --iidfile F          Write the image ID (config digest) to F
      --metadata-file F    Write build results (digests, names) as JSON to F
      --progress MODE      auto, plain, tty (a live view), rawjson (BuildKit's JSON events) or quiet
      --jobs N             Stages built at the same time (default: all that are ready)
      --annotation A       [TYPE[,TYPE][PLATFORM]:]KEY=VALUE, TYPE manifest (default), manifest-descriptor, index
                           or index-descriptor, as buildx's (repeatable; -o also takes annotation.KEY=VALUE ...)
      --network MODE       Every RUN's network unless its own --network says: default (the host's), host or none
      --allow ENTITLEMENT  Grant network.host, which a Dockerfile's RUN --network=host needs (repeatable, or
                           comma-separated; --network host grants it too)
      --add-host NAME:IP   Add NAME to every RUN's /etc/hosts, never to the image (repeatable; host-gateway is 127.0.0.1)
      --shm-size SIZE      Size of every RUN's /dev/shm (default 64m)
      --ulimit NAME=S[:H]  A resource limit of every RUN, as docker's (nofile=1024:2048; repeatable)
      --isolation MODE     How RUN steps are isolated: userns (hoist's sandbox), container (in this
                           container's own root, where namespaces are refused: root with Docker's default
                           capabilities), none (no RUN), or auto (default: the first that works here)
      --push               Push the image to every -t REF (boolean flags also take =true or =false)
      --load               Load the image into the docker (or podman) CLI's image store: docker load
      --provenance V       SLSA provenance v1 attestation: true, false, or mode=min|max[,builder-id=URI]
                           (default when pushing: mode=min; BUILDX_NO_DEFAULT_ATTESTATIONS=1 turns it off)
      --sbom V             SPDX 2.3 SBOM attestation from the image's package databases: true or false
      --attest SPEC        type=provenance,... or type=sbom,... as --provenance and --sbom (repeatable)
      --pull               Pull base images even when the store has them
      --insecure-registry HOST  Reach HOST over plain HTTP (loopback hosts always are)
      --tls-ca FILE        Trust the CAs in FILE too (SSL_CERT_FILE is read as well)
  -q, --quiet              Print only the image ID
      --root DIR           Store location`,
  images: 'Usage: hoist images [--root DIR]\n\nList images in the local store.',
  inspect: 'Usage: hoist inspect [--root DIR] REF\n\nShow an image\'s manifest and config as JSON.',
  save: 'Usage: hoist save [--root DIR] [--format oci|docker] -o FILE REF...\n\nWrite images to one OCI image-layout tarball (default; every platform a name has) or a `docker load` archive (one platform each).',
  rmi: 'Usage: hoist rmi [--root DIR] REF...\n\nRemove image names from the local store.',
  push: 'Usage: hoist push [--root DIR] [--insecure-registry HOST]... [--tls-ca FILE] REF [DEST]\n       hoist push [OPTIONS] oci-layout://PATH[:TAG|@DIGEST] DEST\n\nPush an image from the local store to REF, or to DEST; or one from an OCI layout directory or tarball (hoist save) to DEST.',
  pull: 'Usage: hoist pull [--root DIR] [--platform P | --all-platforms] [--insecure-registry HOST]... [--tls-ca FILE] REF\n\nPull an image into the local store: the platform asked for (default this machine\'s), or every platform of an index.',
  login: 'Usage: hoist login -u USER --password-stdin [--tls-ca FILE] REGISTRY\n\nCheck credentials against REGISTRY and save them where docker login does (REGISTRY_AUTH_FILE if set).',
  logout: 'Usage: hoist logout REGISTRY\n\nRemove the saved credentials for REGISTRY.',
  load: 'Usage: hoist load [--root DIR] [-t NAME] PATH[:TAG]\n\nImport images from an OCI image layout, a directory or a tarball (hoist save, buildx --output type=oci,\nskopeo copy ... oci:). TAG picks one image by its ref.name; NAME names it (default: the name the layout gives).',
  prune: `Usage: hoist prune [--all] [--keep-storage SIZE] [--root DIR]

Remove build cache and blobs that no tagged image needs. Tagged images are never touched, nor
anything as new as a build running on the store.

Options:
      --all                Remove the whole build cache (cache records, extracted layers, cache mounts)
      --keep-storage SIZE  Also remove the least recently used cache until it takes at most SIZE
                           (e.g. 10GB, 512MB, 1.5GiB, or bytes)
      --root DIR           Store location`,
};

export function help(command: string): number {
  process.stdout.write(`${HELP[command]}\n`);
  return 0;
}
