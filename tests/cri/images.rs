//! ImageService against real registries: pull (anonymous, basic auth, through a mirror under
//! the upstream name), list, status, remove, filesystem usage.

use k8s_cri::v1 as cri;
use tonic::Code;

use super::daemon::{Daemon, block_on};
use super::harness::Registry;

fn spec(i: &str) -> Option<cri::ImageSpec> {
    Some(cri::ImageSpec {
        image: i.into(),
        ..Default::default()
    })
}

#[test]
fn pull_list_status_remove_and_fs_info() {
    let basic = Registry::fixtures("basic");
    // docker.io is mirrored by the test's open registry: an offline pull under upstream names
    let open_host = {
        // the PodEnv's registry is made inside Daemon::start; a second open one serves as mirror
        Registry::fixtures("open")
    };
    let d = Daemon::start_with(
        "cri-images",
        &format!(
            "[registry.mirrors.\"docker.io\"]\nendpoints = [\"http://{}\"]\n",
            open_host.host()
        ),
    );
    block_on(async {
        let mut img = d.img().await;
        let base = d.env.image("base");
        let r = img
            .pull_image(cri::PullImageRequest {
                image: spec(&base),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .image_ref;
        assert!(r.starts_with("sha256:"));
        // status by name and by ID
        for q in [base.clone(), r.clone()] {
            let st = img
                .image_status(cri::ImageStatusRequest {
                    image: spec(&q),
                    verbose: true,
                })
                .await
                .unwrap()
                .into_inner();
            let i = st.image.unwrap_or_else(|| panic!("no status for {q}"));
            assert_eq!(i.id, r);
            assert_eq!(i.repo_tags, vec![format!("{base}:latest")]);
            assert!(i.repo_digests[0].starts_with(&format!("{base}@sha256:")));
            assert!(i.size > 0);
            assert_eq!(i.uid, Some(cri::Int64Value { value: 0 }));
            assert!(st.info.contains_key("info"));
        }
        // absent: no image, no error
        let st = img
            .image_status(cri::ImageStatusRequest {
                image: spec("nosuch/thing:1"),
                verbose: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(st.image.is_none());

        // basic auth: refused without credentials, pulled with them (auth field form)
        let private = format!("{}/berth/base-docker", basic.host());
        let e = img
            .pull_image(cri::PullImageRequest {
                image: spec(&private),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_ne!(e.code(), Code::Ok);
        assert!(e.message().contains(&basic.host()), "{e}");
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let r2 = img
            .pull_image(cri::PullImageRequest {
                image: spec(&private),
                auth: Some(cri::AuthConfig {
                    auth,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .image_ref;
        assert!(r2.starts_with("sha256:"));

        // a mirror: docker.io/berth/multi comes from the local registry, named as upstream
        let r3 = img
            .pull_image(cri::PullImageRequest {
                image: spec("berth/multi"),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .image_ref;
        let list = img
            .list_images(cri::ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images;
        let tags: Vec<String> = list.iter().flat_map(|i| i.repo_tags.clone()).collect();
        assert!(
            tags.contains(&"docker.io/berth/multi:latest".to_string()),
            "{tags:?}"
        );
        assert!(
            !tags.iter().any(|t| t.starts_with(&open_host.host())),
            "{tags:?}"
        );
        assert!(
            open_host
                .requests()
                .iter()
                .any(|l| l.contains("/v2/berth/multi/"))
        );
        let filtered = img
            .list_images(cri::ListImagesRequest {
                filter: Some(cri::ImageFilter {
                    image: spec("berth/multi"),
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .images;
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered[0].id, r3);

        let fs = img
            .image_fs_info(cri::ImageFsInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        let u = &fs.image_filesystems[0];
        assert!(u.used_bytes.as_ref().unwrap().value > 0);
        assert_eq!(
            u.fs_id.as_ref().unwrap().mountpoint,
            d.env.dir.join("data").display().to_string()
        );

        // remove by ID, then again (already gone is fine)
        for _ in 0..2 {
            img.remove_image(cri::RemoveImageRequest { image: spec(&r3) })
                .await
                .unwrap();
        }
        let left = img
            .list_images(cri::ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images;
        assert!(left.iter().all(|i| i.id != r3));
        assert_eq!(left.len() + 1, list.len(), "{left:?}");
        let e = img
            .pull_image(cri::PullImageRequest {
                image: spec(""),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    });
}

#[test]
fn every_listed_repo_digest_resolves() {
    let d = Daemon::start("cri-repodigest");
    block_on(async {
        let mut img = d.img().await;
        // pulled by tag: a single-platform image and a multi-platform index
        for name in ["base", "multiarch"] {
            let tagged = d.env.image(name);
            let id = img
                .pull_image(cri::PullImageRequest {
                    image: spec(&tagged),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .image_ref;
            let i = img
                .image_status(cri::ImageStatusRequest {
                    image: spec(&tagged),
                    verbose: false,
                })
                .await
                .unwrap()
                .into_inner()
                .image
                .unwrap();
            assert!(!i.repo_digests.is_empty());
            for rd in &i.repo_digests {
                let found = img
                    .image_status(cri::ImageStatusRequest {
                        image: spec(rd),
                        verbose: false,
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .image;
                assert_eq!(found.map(|f| f.id), Some(id.clone()), "{rd}");
            }
            if name == "base" {
                // CreateContainer by repo@digest
                let rd = i.repo_digests[0].clone();
                let (pod, ctr) = super::daemon::pod_with(
                    &d,
                    "rd",
                    super::daemon::sandbox("rd"),
                    super::daemon::container("c", &rd, &["sleep", "1000"]),
                )
                .await;
                assert_eq!(super::daemon::status(&d, &ctr).await.image_ref, id);
                super::daemon::remove_pod(&d, &pod).await;
            }
            // RemoveImage by repo@digest removes the image
            img.remove_image(cri::RemoveImageRequest {
                image: spec(&i.repo_digests[0]),
            })
            .await
            .unwrap();
            let gone = img
                .image_status(cri::ImageStatusRequest {
                    image: spec(&tagged),
                    verbose: false,
                })
                .await
                .unwrap()
                .into_inner()
                .image;
            assert!(
                gone.is_none(),
                "{name}: still there after RemoveImage by digest"
            );
        }
    });
}
